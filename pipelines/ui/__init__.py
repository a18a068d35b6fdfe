"""The `/ui` playground page: hand-written HTML, CSS and JavaScript in `static/` (no build step,
nothing from another host), and the `app` routes the entry service serves them with.

May import: only the shared modules.
"""
