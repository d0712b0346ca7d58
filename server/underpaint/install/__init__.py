"""`underpaint install-plugin HOST`: put a host plugin where the host looks for it.

``bundle`` is shared: it copies a plugin's own files together with what every Python plugin needs and
a host's Python cannot pip install: the shared protocol client and the pure-Python part of
``websockets``. Each host module (``krita``, ``gimp``) knows that host's folders and how to enable
the plugin, and exposes ``install(dest: Path | None, zip_path: Path | None, host_version: str | None) -> Path``.
"""
