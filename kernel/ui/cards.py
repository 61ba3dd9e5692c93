"""The board's trigger cards and action items as HTML, made in Python.

A board may hold a thousand triggers, each card with its ``Move to`` form, its
``Disable`` and ``Delete`` controls: rendering them through Jinja2 cost more than the
page's 100 ms budget, so they are joined here from f-strings, every value escaped with
:func:`markupsafe.escape` (the same escaping as the autoescaped templates), and the parts
shared by every card of a column (the ``Move to`` options, the CSRF field) made once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from statusflow.ui.board import ActionItem, Card, Column


def csrf_field(token: str) -> str:
    """The hidden CSRF field of a form that works without JavaScript."""
    return f'<input type="hidden" name="csrf_token" value="{escape(token)}">'


def move_options(columns: Sequence[Column], here: str) -> str:
    """The ``Move to`` options of a column's cards: every other status, in order."""
    return "".join(
        f'<option value="{escape(c.id)}">{escape(c.name)}</option>' for c in columns if c.id != here
    )


def _badges(enabled: bool, reason: str | None) -> str:
    out = "" if enabled else '<span class="badge">disabled</span>'
    if reason:
        out += f'<p class="badge warn">inactive: {escape(reason)}</p>'
    return out


def _toggle(path: str, enabled: bool, described: str, csrf: str) -> str:
    verb, value = ("Disable", "false") if enabled else ("Enable", "true")
    return (
        f'<form method="post" action="{path}/enabled" hx-post="{path}/enabled">{csrf}'
        f'<input type="hidden" name="enabled" value="{value}">'
        f'<button type="submit" aria-describedby="{described}">{verb}</button></form>'
    )


def _controls(path: str, enabled: bool, described: str, csrf: str) -> str:
    return (
        f'<div class="card-controls"><a class="button" href="{path}/edit" '
        f'aria-describedby="{described}">Edit</a>{_toggle(path, enabled, described, csrf)}'
        f'<form method="get" action="{path}/delete"><button type="submit" class="danger" '
        f'aria-describedby="{described}">Delete</button></form></div>'
    )


def card_html(card: Card, options: str, csrf: str, editable: bool) -> str:
    """One trigger card: its text, badges and (for a key that may edit) its controls."""
    classes = (
        "card"
        + ("" if card.enabled else " disabled")
        + (" inactive" if card.inactive_reason else "")
    )
    tid = f"t{card.id}"
    out = [
        f'<li class="{classes}" data-trigger="{card.id}">',
        f'<p class="card-title" id="{tid}">{escape(card.text)}</p>',
    ]
    if card.name:
        out.append(f'<p class="hint">{escape(card.title)}</p>')
    if card.summary:
        out.append(f'<p class="summary">{escape(card.summary)}</p>')
    out.append(_badges(card.enabled, card.inactive_reason))
    if editable:
        path = f"/ui/triggers/{card.id}"
        out.append(
            f'<form class="move" method="post" action="{path}/move" hx-post="{path}/move">{csrf}'
            f'<label for="move-{card.id}">Move to</label>'
            f'<select id="move-{card.id}" name="status">{options}</select>'
            f'<button type="submit" aria-describedby="{tid}">Move to</button></form>'
        )
        out.append(_controls(path, card.enabled, tid, csrf))
    out.append("</li>")
    return "".join(out)


def action_html(action: ActionItem, csrf: str, editable: bool) -> str:
    """One action under its status: its text, its delay in words, badges, controls."""
    classes = (
        "action"
        + ("" if action.enabled else " disabled")
        + (" inactive" if action.inactive_reason else "")
    )
    aid = f"a{action.id}"
    after = ", after the previous one" if action.after_previous else ""
    out = [
        f'<li class="{classes}" data-action="{action.id}">',
        f'<p class="card-title" id="{aid}">{escape(action.text)} '
        f'<span class="delay">{escape(action.delay)}{after}</span></p>',
    ]
    if action.name:
        out.append(f'<p class="hint">{escape(action.title)}</p>')
    out.append(_badges(action.enabled, action.inactive_reason))
    if editable:
        out.append(_controls(f"/ui/actions/{action.id}", action.enabled, aid, csrf))
    out.append("</li>")
    return "".join(out)


def column_html(
    columns: Sequence[Column], token: str, editable: bool
) -> list[tuple[Markup, Markup]]:
    """Each column's cards, then its actions, as markup for ``_columns.html``."""
    csrf = csrf_field(token)
    made = []
    for column in columns:
        options = move_options(columns, column.id)
        cards = "".join(card_html(c, options, csrf, editable) for c in column.cards)
        actions = "".join(action_html(a, csrf, editable) for a in column.actions)
        made.append((Markup(cards), Markup(actions or '<li class="none">No actions.</li>')))
    return made
