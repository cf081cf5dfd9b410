"""Components for what the declarative manifest cannot say about the call-volume API.

Each class says why the CDK's own component falls short. BEHAVIOR.md explains the API quirks behind them.
"""

from __future__ import annotations

import time
import uuid
import warnings
from dataclasses import InitVar, dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping, MutableMapping, Optional, Union

import jwt
from jwt.warnings import InsecureKeyLengthWarning
import orjson
import requests

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.auth.declarative_authenticator import DeclarativeAuthenticator
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.interpolation.interpolated_string import InterpolatedString
from airbyte_cdk.sources.declarative.requesters.error_handlers import DefaultErrorHandler
from airbyte_cdk.sources.declarative.requesters.paginators.strategies.pagination_strategy import (
    PaginationStrategy,
)
from airbyte_cdk.sources.streams.http.error_handlers.response_models import (
    ErrorResolution,
    ResponseAction,
)
from airbyte_cdk.sources.types import Config, Record

RECORDS_FIELD = "CallVolumeUpdate"
HAS_MORE_FIELD = "hasMore"
TOTAL_COUNT_FIELD = "totalCount"
AUTH_HEADER = "auth"
# Kore.ai accepts tokens that live at most one hour; a short life limits what a leaked token could do.
TOKEN_LIFETIME_SECONDS = 600

# The secret's length is Kore.ai's choice, not the user's; PyJWT's warning about it would also be printed as a
# bare line on stdout, breaking the Airbyte protocol.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

_PAYLOAD_ATTRIBUTE = "_callvolume_payload"
_NOT_PARSED = object()


def parsed_page(response: requests.Response) -> Optional[Mapping[str, Any]]:
    """The page's JSON body when it is a call-volume page, else None; parsed once and kept on the response.

    The error handler, the extractor and the paginator all read the same body: one parse serves the three.
    """
    payload = getattr(response, _PAYLOAD_ATTRIBUTE, _NOT_PARSED)
    if payload is _NOT_PARSED:
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = None
        if not (isinstance(payload, dict) and isinstance(payload.get(RECORDS_FIELD), list)):
            payload = None
        setattr(response, _PAYLOAD_ATTRIBUTE, payload)
    return payload  # type: ignore[return-value]


@dataclass
class PerRequestJwtAuthenticator(DeclarativeAuthenticator):
    """Signs a fresh HS256 token, with a unique `jti`, for every request and every retry of it.

    Why not `JwtAuthenticator`: its interpolated payload turns a Client ID that looks numeric ("0123") into a
    number (or drops its leading zero), and Kore.ai then refuses the token; this class keeps `appId` the exact
    string of the config. The header is Kore.ai's own `auth`, with no prefix.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    client_id: Union[InterpolatedString, str]
    client_secret: Union[InterpolatedString, str]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._client_id = InterpolatedString.create(self.client_id, parameters=parameters)
        self._client_secret = InterpolatedString.create(self.client_secret, parameters=parameters)

    @property
    def auth_header(self) -> str:
        return AUTH_HEADER

    @property
    def token(self) -> str:
        issued_at = int(time.time())
        claims = {
            "appId": self._app_id,
            "iat": issued_at,
            "exp": issued_at + TOKEN_LIFETIME_SECONDS,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    # Evaluated once: the config does not change during a run, and a Jinja evaluation costs about 0.1 ms.
    @cached_property
    def _app_id(self) -> str:
        return self._client_id.eval(self.config, valid_types=(str,))  # type: ignore[no-any-return]

    @cached_property
    def _secret(self) -> str:
        return self._client_secret.eval(self.config, valid_types=(str,))  # type: ignore[no-any-return]


@dataclass
class HasMoreOffsetPagination(PaginationStrategy):
    """Offset paging that follows `hasMore` and re-reads a window whose rows moved while it was paged.

    Why not `OffsetIncrement`: it stops on the first page shorter than `limit` and ignores `hasMore`, but
    Kore.ai may cap its pages below the `limit` asked for while `hasMore` is still true. Here `skip` grows by
    the rows actually received, and the page with `hasMore: false` is the last one.

    Offsets also shift when rows are inserted into or removed from a window between two page requests: a row
    removed before the offset moves every later row one place up, and the row at the page boundary is
    skipped. Every page carries `totalCount`; when it differs from the first page's, the window is read again
    from `skip` 0 (the rows read twice are dedup'd by the primary key), at most `MAX_WINDOW_RESTARTS` times
    before the sync fails rather than lose rows silently.

    The token is `{"skip", "total", "restarts"}`, derived only from the page just read and the previous token:
    one instance pages every window at once, so it keeps no state of its own.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    page_size: Union[InterpolatedString, str, int]

    MAX_WINDOW_RESTARTS = 5

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._page_size = int(
            InterpolatedString.create(str(self.page_size), parameters=parameters).eval(self.config)
        )

    @property
    def initial_token(self) -> Optional[Any]:
        return None

    def next_page_token(
        self,
        response: requests.Response,
        last_page_size: int,
        last_record: Optional[Record],
        last_page_token_value: Optional[Any] = None,
        page_size_override: Optional[int] = None,
        stream_slice: Any = None,
    ) -> Optional[Any]:
        page = parsed_page(response)
        if page is None:
            return None
        token = last_page_token_value or {}
        skip, first_total, restarts = token.get("skip", 0), token.get("total"), token.get("restarts", 0)
        total = page.get(TOTAL_COUNT_FIELD)
        if first_total is not None and total is not None and total != first_total:
            if restarts >= self.MAX_WINDOW_RESTARTS:
                raise ShiftingWindowError(
                    f"Rows kept being added or removed while this window was paged (read again {restarts} times), "
                    "so rows could be skipped; the sync stops instead. Run it again; if it persists, lower `window_hours`."
                )
            return {"skip": 0, "total": None, "restarts": restarts + 1}
        if not page.get(HAS_MORE_FIELD):
            return None
        rows = len(page[RECORDS_FIELD])
        if rows == 0:
            raise MalformedPageError(
                "Kore.ai answered hasMore=true with an empty page; the connector stops rather than loop."
            )
        return {"skip": skip + rows, "total": total if first_total is None else first_total, "restarts": restarts}

    def get_page_size(self) -> Optional[int]:
        return self._page_size


class MalformedPageError(Exception):
    """The API sent a page the connector cannot continue from."""


class ShiftingWindowError(Exception):
    """Rows moved under the offsets of a window more often than re-reading it can absorb."""


@dataclass
class CallVolumeExtractor(RecordExtractor):
    """Yields the rows of `CallVolumeUpdate` from the page the error handler already parsed.

    Why not `DpathExtractor`: it decodes the body a second time and walks every leaf of the page to resolve a
    one-element path (15% of a sync's CPU, see perf-notes), and its JSON decoder turns an unreadable body into
    an empty page, which would end pagination and lose rows silently.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        page = parsed_page(response)
        if page is None:
            raise MalformedPageError("Kore.ai sent a page that is not call-volume JSON after all retries.")
        return page[RECORDS_FIELD]


_UNREACHABLE_HOST_HINT = "check `host`: it should be the Kore.ai environment, e.g. platform.kore.ai"
_NAME_RESOLUTION_MARKERS = ("NameResolutionError", "Name or service not known", "getaddrinfo failed")


@dataclass
class CallVolumeErrorHandler(DefaultErrorHandler):
    """The manifest's status mapping, plus what `response_filters` cannot match.

    - A 200 whose body is cut short or is not call-volume JSON is retried: the CDK's JSON decoder would read it
      as an empty page and end the window early, losing rows.
    - A host that cannot be resolved, refuses the connection, or whose TLS certificate fails is a configuration
      error that retrying cannot fix: it fails at once and names `host`, rather than backing off for minutes.
      A connection dropped mid-request, or a timeout, stays transient and is retried.
    Filters only ever see responses; these cases are exceptions or 200s, so they need code.
    """

    def interpret_response(
        self, response_or_exception: Optional[Union[requests.Response, Exception]]
    ) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response):
            if response_or_exception.status_code == 200 and parsed_page(response_or_exception) is None:
                return ErrorResolution(
                    response_action=ResponseAction.RETRY,
                    failure_type=FailureType.transient_error,
                    error_message=(
                        "Kore.ai answered 200 with a body that is not complete call-volume JSON "
                        "(cut short or an HTML error page); retried until the retries ran out."
                    ),
                )
        elif isinstance(response_or_exception, requests.exceptions.SSLError):
            return _config_error(
                f"The TLS connection to the host failed (its certificate could not be verified); {_UNREACHABLE_HOST_HINT}."
            )
        elif isinstance(response_or_exception, requests.exceptions.ConnectionError):
            cause = repr(response_or_exception)
            if any(marker in cause for marker in _NAME_RESOLUTION_MARKERS):
                return _config_error(f"The host name could not be resolved; {_UNREACHABLE_HOST_HINT}.")
            if "NewConnectionError" in cause:
                return _config_error(
                    f"Could not connect to the host (nothing accepts connections there); {_UNREACHABLE_HOST_HINT}."
                )
            return ErrorResolution(
                response_action=ResponseAction.RETRY,
                failure_type=FailureType.transient_error,
                error_message="The connection to Kore.ai dropped mid-request; retried until the retries ran out.",
            )
        elif isinstance(response_or_exception, requests.exceptions.Timeout):
            return ErrorResolution(
                response_action=ResponseAction.RETRY,
                failure_type=FailureType.transient_error,
                error_message="Kore.ai did not answer in time; retried until the retries ran out.",
            )
        return super().interpret_response(response_or_exception)


def _config_error(message: str) -> ErrorResolution:
    return ErrorResolution(
        response_action=ResponseAction.FAIL, failure_type=FailureType.config_error, error_message=message
    )
