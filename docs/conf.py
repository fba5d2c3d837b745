"""Sphinx configuration of the airflow-provider-octopods docs site.

Built by the test command (``python3 tools/dev.py test``) with warnings as errors:

    .venv/bin/sphinx-build -W --keep-going -n -E -b html docs .dev/docs-html

Sphinx, because Airflow and its providers document themselves with it (reST pages, autodoc
from the ``:param x:`` docstrings the package uses); furo as the theme; MyST only so that
``CHANGELOG.md`` is also a page of the site. No intersphinx: the build must run offline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))
# autodoc imports Airflow: give it a home of its own rather than ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", str(DOCS.parent / ".dev" / "docs-airflow-home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from airflow_provider_octopods import __version__  # noqa: E402

project = "airflow-provider-octopods"
author = "airflow-provider-octopods developers"
copyright = "airflow-provider-octopods developers; Apache License 2.0"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "myst_parser",
    "octopods_checks",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_screenshots", "_ext", "screenshots.py"]
templates_path: list[str] = []

# The reference: signatures with their types, classes' parameters from the class docstring.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autoclass_content = "class"
autodoc_default_options = {"show-inheritance": True}
autodoc_inherit_docstrings = True

# Broken internal references are errors (-n). Names from Airflow and other libraries cannot be
# resolved without intersphinx (offline build): they are shown as written.
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(airflow|pendulum|aiohttp|requests|urllib3|jinja2|sqlalchemy|pytest|_pytest)(\..*)?"),
    ("py:.*", r"(datetime|collections\.abc|typing|enum|socket|asyncio|pathlib|os)\..*"),
    ("py:.*", r"(Context|PokeReturnValue|TriggerEvent)"),
    ("py:.*", r"(BaseOperator|BaseSensorOperator|BaseTrigger|BaseNotifier|BaseHook)"),
    ("py:.*", r"(Sequence|Iterator|AsyncIterator|Callable|Mapping|Any|timedelta|datetime|Path|Enum)"),
    ("py:.*", r"(RetryPolicy|ClientSettings|RecordStore|SendGuard|SendRequest|AcceptedMessage|RequestRecord)"),
    ("py:.*", r"(OctopodsClient|AsyncOctopodsClient|Encoding|SegmentInfo|MessageId|FaultSpec|Fault)"),
    # Internals that public docstrings name but the reference does not document: the clients, the
    # send record, the sandbox's store and faults, and the class whose summary the trigger yields
    # (that summary is described in sending-and-tracking). Everything else of the package, the
    # errors of api.errors and the models of api.models first, must resolve: a broken link fails.
    ("py:.*", r"airflow_provider_octopods\.(clients|send_record|sandbox\.store|sandbox\.faults)(\..*)?"),
    ("py:class", r"airflow_provider_octopods\.api\.tracking\.DeliveryBatch"),
]

myst_heading_anchors = 3

html_theme = "furo"
html_title = f"airflow-provider-octopods {release}"
html_static_path = ["_static"]
html_css_files = ["octopods.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": True,
    "source_edit_link": None,
}

# No linkcheck: the build runs offline. Internal links are checked by -n and -W.
linkcheck_ignore = [r".*"]
