"""The HTTP side of the kernel: ``init_app`` builds the aiohttp application."""

from statusflow.http.app import init_app

__all__ = ["init_app"]
