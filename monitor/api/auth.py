"""Who is calling: bearer tokens from the token file, and which exporters the caller may see."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.access.tokens import Principal, TokenBook
from monitor.api.problems import ProblemError

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="an API token made by `monitor token create`")


class TokenKeeper:
    """The token file, read again whenever it changes, so tokens made while the API runs work at once.

    A missing file is an empty book (every token is refused). A file that becomes unreadable or
    invalid while the API runs leaves the last good book in force, with a warning in the log.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._book = TokenBook((), path)
        self._seen: tuple[int, int, int] | None = None

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def load(self) -> TokenBook:
        """Read the file now; raises ConfigFileError (file, field, reason) when it is not a valid token file."""
        signature = self._signature()
        self._book = TokenBook.load(self.path, missing_ok=True)
        self._seen = signature
        if signature is None:
            log.warning("no token file at %s: every API request is refused until a token is made with "
                        "`monitor token create`", self.path)
        return self._book

    def book(self) -> TokenBook:
        """The tokens in force: the file as it is now, or the last good version of it."""
        signature = self._signature()
        if signature != self._seen:
            try:
                self.load()
            except Exception as exc:  # a half-written or broken file must not lock every caller out
                log.warning("token file %s not reloaded, the previous tokens stay in force: %s", self.path, exc)
                self._seen = signature
        return self._book


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller and the exporters it may see (None: all of them)."""

    principal: Principal
    visible: frozenset[str] | None

    def may_see(self, exporter_id: str) -> bool:
        """Whether this caller may see anything of the exporter."""
        return self.visible is None or exporter_id in self.visible


def _refuse(detail: str, error: str | None) -> ProblemError:
    challenge = 'Bearer realm="aftersales-monitor"' + (f', error="{error}"' if error else "")
    return ProblemError(401, detail, headers={"WWW-Authenticate": challenge})


async def authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The principal of the request's bearer token; 401 problem when there is none or it is refused."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _refuse("this route needs an API token: send `Authorization: Bearer <token>` "
                      "(make one with `monitor token create`)", None)
    keeper: TokenKeeper = request.app.state.tokens
    book = keeper.book()
    principal = book.authenticate(credentials.credentials)
    if principal is None:
        raise _refuse("the API token is not valid (unknown, revoked, or mistyped)", "invalid_token")
    return principal
