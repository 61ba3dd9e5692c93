"""The HTTP side of the kernel: ``init_app`` builds the aiohttp application."""

from kernel.web.app import init_app

__all__ = ["init_app"]
