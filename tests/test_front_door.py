"""The front door (:mod:`statusflow.http.front_door`): the app's one middleware layer,
and the in-flight count it keeps for the graceful stop."""

from __future__ import annotations

from statusflow.http import init_app
from statusflow.http.drain import IN_FLIGHT, InFlight
from statusflow.testing import settings_for


def test_the_app_has_one_middleware_of_its_own(sqlite_url: str) -> None:
    app = init_app(settings_for(database_url=sqlite_url, enable=("payment",)))
    assert [m.__name__ for m in app.middlewares] == ["front_door"]


async def test_the_in_flight_count_drains_when_the_last_request_leaves() -> None:
    in_flight = InFlight()
    in_flight.enter()
    in_flight.enter()
    in_flight.leave()
    assert not await in_flight.drain(0.01)  # one still in flight
    assert in_flight.draining
    in_flight.leave()
    assert await in_flight.drain(0.01)


async def test_answers_given_while_draining_close_their_connection(make_client) -> None:
    client = await make_client(enable=("payment",))
    assert (await client.get("/healthz")).headers.get("Connection") != "close"
    client.app[IN_FLIGHT].draining = True
    for path in ("/healthz", "/api/nothing-here"):  # an answer and an error alike
        response = await client.get(path)
        assert response.headers.get("Connection") == "close", path
    assert client.app[IN_FLIGHT].count == 0
