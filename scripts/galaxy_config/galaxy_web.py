"""Galaxy's web app as the harness serves it (gunicorn `galaxy_web:factory()`, scripts/galaxy).

It is Galaxy's own app (galaxy.webapps.galaxy.fast_factory) plus one fix. Galaxy 26.1 fills a
visualization plugin's `href` (the folder its client loads the plugin's script from) with the
routes `url_for`, which resolves only in a thread that has served a legacy (WSGI) request; in
the other threads of the FastAPI pool it returns a placeholder ("*deprecated attribute, URL
not filled in by server*"), the client then asks for the script at a wrong URL and the plugin
stays blank. Seen here in about one page load in four. A plugin's href is its static path
(`/static/plugins/visualizations/<name>/static`, as url_for gives it when it works).
"""

from galaxy.visualization.plugins import plugin
from galaxy.web.framework import DEPRECATED_URL_ATTRIBUTE_MESSAGE, handle_url_for
from galaxy.webapps.galaxy.fast_factory import factory  # noqa: F401  (what gunicorn loads)


def plugin_url_for(path, *args, **kwargs):
    url = handle_url_for(path, *args, **kwargs)
    return path if url == DEPRECATED_URL_ATTRIBUTE_MESSAGE else url


plugin.url_for = plugin_url_for
