"""The board: statusflow's web UI at ``/ui/`` for the people who run the store.

Server-rendered pages (Jinja2 through ``aiohttp-jinja2``), enhanced by htmx and
SortableJS (vendored in ``static/``, pinned by ``static/SHA256SUMS``). Every change the
UI makes goes through the same functions as the API's handlers, so the API's rules and
messages apply as they are. :func:`statusflow.ui.mount.mount_ui` puts it on the app.
"""
