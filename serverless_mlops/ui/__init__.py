"""``mlops ui``: a read-only web console over the registry, the reports in the bucket and the workflows' executions.

:mod:`data` reads a page's worth through the same registry and artifact store the CLI uses, :mod:`charts` draws
inline SVG on the server, :mod:`app` is the Starlette app (Jinja2 templates, GET only, a strict
Content-Security-Policy), :mod:`server` runs it with uvicorn on a socket bound to loopback by default.

May import the domain (store, drift, quality, model, aws), starlette, jinja2 and uvicorn; never ``cli`` or ``local``:
the CLI imports it (``mlops ui``), nothing else does.
"""
