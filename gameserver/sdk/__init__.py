"""Client SDK generation: ``gameserver sdk typescript|csharp --out DIR``.

:mod:`gameserver.sdk.model` describes the server's API as one plain dict; each language's module renders that
dict into source files (``render(api) -> {relative path: text}``), a pure function, so that regenerating from the
same server gives the same bytes.
"""
