"""One renderer per destination: Notification -> the JSON body that destination's webhook accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .chime import render_chime
from .message import Notification
from .slack import render_slack
from .teams import render_teams

RENDERERS: dict[str, Callable[[Notification], dict[str, Any]]] = {
    "chime": render_chime,
    "slack": render_slack,
    "teams": render_teams,
}
