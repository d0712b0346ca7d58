"""The underpaint GIMP 3 plug-in's modules.

``settings`` and ``model`` know nothing of GIMP (unit-tested on their own); ``canvas`` is the thin
glue that reads pixels from and pastes layers into a GIMP image; ``panel`` is the GTK panel and
``procedures`` the PDB procedures. Standard library and PyGObject only, plus the vendored
``underpaint_protocol`` client and ``websockets`` (the entry file puts ``vendor/`` on sys.path).
"""

VERSION = "0.1.0"
