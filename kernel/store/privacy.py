"""Personal data removed: an order deleted (:func:`delete_order`), a person's phone or
email erased everywhere (:func:`erase_contact`), events past retention expired
(:func:`expire_events`). Each runs in the caller's write transaction.

What a deletion keeps, and why, is documented in ``docs/api.md`` (Privacy): an event
that resolved to the deleted order only goes with it; one that resolved to other orders
too stays, without the deleted order in its orders, moves and trace. An erasure keeps
every order, event, move and trace, with the phone or email replaced by ``"[erased]"``
(an event's ``contact`` loses the key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statusflow.engine.contacts import normalize_phone, order_identifiers
from statusflow.store import queries as q
from statusflow.store.statements import StoreSQL
from statusflow.store.timeline import events_by_id, is_reference, whole
from statusflow.timestamps import utc_now

ERASED = "[erased]"
CHUNK = 500
"""Values per expanding ``IN`` list (under SQLite's limit on bound parameters)."""

_PHONE_LIKE = re.compile(r"^[\s\d()+\-./]{6,40}$")
_LIKE_SPECIAL = re.compile(r"([\\%_])")


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def like_pattern(text: str) -> str:
    """A lower-case ``LIKE`` pattern finding ``text`` anywhere (``\\`` escapes)."""
    return "%" + _LIKE_SPECIAL.sub(r"\\\1", text.lower()) + "%"


# --- an order deleted --------------------------------------------------------------------


def without_order(result: Mapping[str, Any], order_id: str) -> dict[str, Any]:
    """An event's stored result without ``order_id`` in its orders, moves and trace."""
    kept = dict(result)
    kept["order_ids"] = [o for o in result.get("order_ids") or () if o != order_id]
    kept["moves"] = [m for m in result.get("moves") or () if m.get("order_id") != order_id]
    if "trace_groups" in result:
        kept["trace_groups"] = [g for g in result["trace_groups"] if g[0] != order_id]
    if "trace" in result:
        kept["trace"] = [t for t in result["trace"] or () if t.get("order_id") != order_id]
    return kept


async def delete_order(sql: StoreSQL, order_id: str) -> dict[str, int] | None:
    """Delete an order with its identifiers, timeline and moves; delete the stored events
    that resolved to it alone, and take it out of the others. ``None``: no such order;
    else what went: ``events_deleted``, ``events_changed``, ``timeline_entries``,
    ``moves``."""
    if await sql.order(order_id, lock=True) is None:
        return None
    entries = await sql.rows(q.TIMELINE_ROWS_OF, {"order_id": order_id})
    event_ids = sorted(
        {
            str(e["data"]["event_id"])
            for e in entries
            if e["kind"] == "event" and isinstance(e["data"], dict) and "event_id" in e["data"]
        }
    )
    gone: list[int] = []
    changed = 0
    for event_id in event_ids:
        found = await sql.rows(q.EVENT_REFS_BY_ID, {"id": event_id})
        if not found:
            continue  # expired or deleted meanwhile
        seq, result = found[0]["seq"], found[0]["result"] or {}
        kept = without_order(result, order_id)
        if not kept["order_ids"]:
            gone.append(seq)
        elif kept != result:
            await sql.run(q.UPDATE_EVENT_RESULT, {"w_seq": seq, "v_result": kept})
            changed += 1
    for chunk in _chunks(gone):
        await sql.run(q.DELETE_EVENTS, {"ids": list(chunk)})
    await sql.run(q.DELETE_IDENTIFIERS, {"order_id": order_id})
    moves = (await sql.execute(q.DELETE_MOVES_OF, {"order_id": order_id})).rowcount
    await sql.run(q.DELETE_TIMELINE_OF, {"order_id": order_id})
    await sql.run(q.DELETE_ORDER, {"id": order_id})
    return {
        "events_deleted": len(gone),
        "events_changed": changed,
        "timeline_entries": len(entries),
        "moves": max(moves, 0),
    }


# --- a person's identifiers erased -------------------------------------------------------


@dataclass
class Eraser:
    """Finds a phone (E.164) or an email (lower case) in JSON values and replaces it.

    A string is erased whole when it is the phone (in any format that parses to it) or
    the email (in any case); inside a longer string (a message, a trace's reason) the
    email in any case and the phone as written in the orders and events seen are
    replaced by ``"[erased]"``.
    """

    phone: str | None
    email: str | None
    region: str
    written: set[str] = field(default_factory=set)
    """The phone as written in the orders and event contacts found so far."""

    def __post_init__(self) -> None:
        if self.phone:
            self.written.add(self.phone)

    def is_phone(self, value: Any) -> bool:
        if not self.phone or not isinstance(value, str) or not _PHONE_LIKE.match(value):
            return False
        try:
            return normalize_phone(value, self.region) == self.phone
        except ValueError:
            return False

    def is_email(self, value: Any) -> bool:
        return bool(self.email) and isinstance(value, str) and value.strip().lower() == self.email

    def note(self, value: Any) -> bool:
        """Whether ``value`` is the phone or the email; remember how the phone was
        written."""
        if self.is_phone(value):
            self.written.add(str(value).strip())
            return True
        return self.is_email(value)

    def text(self, value: str) -> str:
        if self.note(value):
            return ERASED
        if self.email and self.email in value.lower():
            value = re.sub(re.escape(self.email), ERASED, value, flags=re.IGNORECASE)
        for written in self.written:
            if len(written) >= 6 and written in value:
                value = value.replace(written, ERASED)
        return value

    def scrub(self, value: Any) -> Any:
        """``value`` (any JSON) with the phone and email replaced."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        return value

    def contact(self, contact: Mapping[str, Any]) -> dict[str, Any]:
        """An event's contact without the phone or email (the key goes), other
        identifiers scrubbed."""
        return {
            key: self.scrub(value)
            for key, value in contact.items()
            if not (key in ("phone", "email") and self.note(value))
        }

    def party(self, party: Any) -> Any:
        """An order's contact or company without the phone in ``phones``, the email in
        ``emails`` and an ``id`` that is one of them; its other values scrubbed."""
        if not isinstance(party, dict):
            return party
        kept: dict[str, Any] = {}
        for key, value in party.items():
            if key in ("phones", "emails") and isinstance(value, list):
                kept[key] = [v for v in value if not self.note(v)]
            elif not (key == "id" and self.note(value)):
                kept[key] = self.scrub(value)
        return kept

    def result(self, result: Mapping[str, Any]) -> dict[str, Any]:
        """A stored result with the reasons of its trace and its errors scrubbed (orders,
        moves and trigger ids stay)."""
        kept = dict(result)
        if "trace_groups" in result:
            kept["trace_groups"] = [
                [g[0], g[1], self.scrub(g[2]), *g[3:]] for g in result["trace_groups"]
            ]
        for key in ("trace", "errors"):
            if key in result:
                kept[key] = self.scrub(result[key])
        return kept

    def patterns(self) -> list[str]:
        """``LIKE`` patterns that every stored text holding the phone or email matches
        (a superset: each candidate is checked after). The phone's last four digits,
        together or as two pairs around one character (``0100``, ``01 00``)."""
        found = []
        if self.email:
            found.append(like_pattern(self.email))
        if self.phone:
            tail = self.phone[-4:]
            found += [like_pattern(tail), f"%{tail[:2]}_{tail[2:]}%"]
        return found


async def erase_contact(
    sql: StoreSQL, eraser: Eraser, candidates: Iterable[int], after: int
) -> dict[str, int]:
    """Erase ``eraser``'s phone and email from every order (its contact's and company's
    phones and emails, its fields, its identifiers), every stored event (contact, data,
    the reasons of its trace), the timelines of the orders touched and the plugins'
    marks that hold them. What traces and moves need (order ids, statuses, trigger ids)
    stays.

    :param candidates: events already found to mention them (``EVENTS_MENTIONING`` read
        outside the write transaction, on SQLite); those after ``after`` are looked for
        here.
    :return: what changed: ``orders``, ``identifiers``, ``events``, ``timeline_entries``,
        ``plugin_marks``.
    """
    counts = dict.fromkeys(
        ("orders", "identifiers", "events", "timeline_entries", "plugin_marks"), 0
    )
    touched: set[str] = set()
    order_ids: set[str] = set()
    for kind, value in (("phone", eraser.phone), ("email", eraser.email)):
        if value:
            found = await sql.rows(q.ORDERS_WITH_IDENTIFIER, {"kind": kind, "value": value})
            order_ids.update(row["order_id"] for row in found)
    now = utc_now()
    for order_id in sorted(order_ids):  # in id order, as event groups lock them
        row = await sql.order(order_id, lock=True)
        if row is None:
            continue
        doc = dict(row["doc"] or {})
        identified = list(order_identifiers(doc, eraser.region))
        for key in ("contact", "company"):
            if key in doc:
                doc[key] = eraser.party(doc[key])
        if "fields" in doc:
            doc["fields"] = eraser.scrub(doc["fields"])
        if isinstance(doc.get("visitor_ids"), list):
            doc["visitor_ids"] = [v for v in doc["visitor_ids"] if not eraser.note(v)]
        kept = list(order_identifiers(doc, eraser.region))
        await sql.save_order(order_id, row["status"], doc, now)
        await sql.replace_identifiers(
            order_id, [{"order_id": order_id, "kind": k, "value": v} for k, v in kept]
        )
        counts["orders"] += 1
        counts["identifiers"] += len(identified) - len(kept)
        touched.add(order_id)

    seqs = set(candidates)
    for pattern in eraser.patterns():
        seqs.update(
            r["seq"]
            for r in await sql.rows(q.EVENTS_MENTIONING, {"after": after, "pattern": pattern})
        )
    events: list[dict[str, Any]] = []
    for chunk in _chunks(sorted(seqs)):
        events.extend(await sql.rows(q.EVENTS_BY_SEQS, {"ids": list(chunk)}))
    for event in events:  # first, how the phone was written: free text may hold it so
        eraser.contact(event["contact"] or {})
        eraser.scrub(event["data"] or {})
    for event in events:
        contact = eraser.contact(event["contact"] or {})
        data = eraser.scrub(event["data"] or {})
        result = eraser.result(event["result"] or {})
        if (contact, data, result) != (event["contact"], event["data"], event["result"]):
            values = {"w_seq": event["seq"], "v_contact": contact, "v_data": data}
            await sql.run(q.UPDATE_EVENT_PERSONAL, {**values, "v_result": result})
            counts["events"] += 1
            touched.update(result.get("order_ids") or ())

    before = {str(event["id"]): event["data"] for event in events}  # the data erased
    for order_id in sorted(touched):
        counts["timeline_entries"] += await _erase_timeline(sql, eraser, order_id, before)

    marks: set[int] = set()
    for written in sorted({*eraser.written, *([eraser.email] if eraser.email else [])}):
        found = await sql.rows(q.MARKS_MENTIONING, {"pattern": like_pattern(written)})
        marks.update(row["id"] for row in found)
    for chunk in _chunks(sorted(marks)):
        await sql.run(q.DELETE_MARKS, {"ids": list(chunk)})
    counts["plugin_marks"] = len(marks)
    return counts


async def _erase_timeline(
    sql: StoreSQL, eraser: Eraser, order_id: str, before: Mapping[str, Any]
) -> int:
    """Erase from an order's timeline; the entries whose answer changed.

    A whole entry is scrubbed where it is stored. A reference to its event
    (:mod:`statusflow.store.timeline`) changed when the whole entry it stood for did
    (its event's data as it was before, ``before``); it is left a reference when the
    event's row, erased already, gives the scrubbed entry back, else stored whole."""
    entries = await sql.rows(q.TIMELINE_ROWS_OF, {"order_id": order_id})
    referred = sorted(
        {e["data"]["event_id"] for e in entries if is_reference(e["kind"], e["data"])}
    )
    events = await events_by_id(sql, referred) if referred else {}
    changed = 0
    for entry in entries:
        event = (
            events.get(entry["data"]["event_id"])
            if is_reference(entry["kind"], entry["data"])
            else None
        )
        if event is None:
            data = eraser.scrub(entry["data"])
            if data != entry["data"]:
                await sql.run(q.UPDATE_TIMELINE_DATA, {"w_seq": entry["seq"], "v_data": data})
                changed += 1
            continue
        old = whole(entry["data"], {**event, "data": before.get(event["id"], event["data"])})
        new = eraser.scrub(old)
        if new != old:
            changed += 1
        if whole(entry["data"], event) != new:
            await sql.run(q.UPDATE_TIMELINE_DATA, {"w_seq": entry["seq"], "v_data": new})
    return changed


async def mentioning(sql: StoreSQL, eraser: Eraser) -> tuple[set[int], int]:
    """(Read before the write transaction) the events that may hold the phone or email,
    and the last event's ``seq``: later ones are looked for in the write transaction."""
    last = int(await sql.scalar(q.LAST_EVENT) or 0)
    seqs: set[int] = set()
    for pattern in eraser.patterns():
        found = await sql.rows(q.EVENTS_MENTIONING, {"after": 0, "pattern": pattern})
        seqs.update(row["seq"] for row in found if row["seq"] <= last)
    return seqs, last


# --- old events expired ------------------------------------------------------------------


async def expire_events(sql: StoreSQL, cutoff: str, limit: int) -> tuple[int, int, bool]:
    """Delete up to ``limit`` of the oldest events received before ``cutoff``, with their
    ``event`` timeline entries (moves and ``status_changed`` entries stay).

    :return: ``(events deleted, timeline entries deleted, whether older ones may remain)``.
    """
    rows = await sql.rows(q.OLDEST_EVENTS, {"limit": limit})
    old = []
    for row in rows:
        if row["received_at"] >= cutoff:
            break
        old.append(row)
    if not old:
        return 0, 0, False
    orders = sorted({o for row in old for o in (row["result"] or {}).get("order_ids") or ()})
    entries = 0
    for chunk in _chunks(orders):
        done = await sql.execute(q.DELETE_EXPIRED_ENTRIES, {"ids": list(chunk), "cutoff": cutoff})
        entries += max(done.rowcount, 0)
    events = 0
    for chunk in _chunks([row["seq"] for row in old]):
        done = await sql.execute(q.DELETE_EXPIRED_EVENTS, {"ids": list(chunk), "cutoff": cutoff})
        events += max(done.rowcount, 0)
    return events, entries, len(old) == limit
