"""The engine's typed service layer: commands and views (pydantic) over the engine, used by the API.

Every function takes its dependencies explicitly (a :class:`~irflow.engine.runtime.Services` or a
:class:`~irflow.store.db.Database`, and the :class:`~irflow.engine.services.principals.Principal` acting),
raises the errors of :mod:`irflow.engine.services.errors`, and holds the rules; entry points only translate.
"""
