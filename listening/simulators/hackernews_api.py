"""A local Hacker News Search API (Algolia's hn.algolia.com) for tests, demos and development.

Serves `GET /api/v1/search_by_date` (newest first) and `GET /api/v1/search` (by points) with
Algolia's parameters and shapes: `query` (every word must match, the last one as a prefix,
as Algolia's default `prefixLast` does), `tags` (comma = AND, parentheses = OR: story,
comment, show_hn, ask_hn, author_<name>, story_<id>), `numericFilters` (created_at_i, points,
num_comments with < <= = != >= >), `page` and `hitsPerPage` with Algolia's pagination cap
(1,000 hits: pages beyond it come back empty, `nbPages` counts only reachable ones), errors
as `{"message", "status"}`, and a per-IP budget (10,000 requests an hour by default) whose
429 carries no reset time, as Algolia's does not. `GET /api/v1/items/<id>` answers an item.

Not modelled: typo tolerance, relevance ranking beyond points, `_highlightResult` snippets
(a plain highlight is sent), `restrictSearchableAttributes` and other Algolia parameters
(accepted and ignored), front_page/poll tags and user pages.

Stdlib only, no Django (see `listening.simulators.base`).
"""

from __future__ import annotations

import html
import itertools
import re
from datetime import UTC, datetime
from http import HTTPStatus
from math import ceil
from typing import Any
from urllib.parse import urlencode

from listening.simulators.base import (
    Answer,
    ApiError,
    PlatformSimulator,
    RateWindow,
    Request,
    json_answer,
    serve_with_demo_posts,
    simulator_arguments,
)

HITS_PER_PAGE_DEFAULT = 20
HITS_PER_PAGE_MAX = 1000
PAGINATION_LIMIT = 1000  # Algolia's paginationLimitedTo on the HN index
REQUESTS_PER_HOUR = 10_000  # per IP, as hn.algolia.com/api says
FIRST_ITEM_ID = 40_000_000
NUMERIC_ATTRIBUTES = ("created_at_i", "points", "num_comments")
_NUMERIC_RE = re.compile(r"^\s*(created_at_i|points|num_comments)\s*(<=|>=|!=|<|>|=)\s*(-?\d+)\s*$")
_TOKEN_RE = re.compile(r"\w+")
_TAG_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_OPERATORS = {
    "<": int.__lt__,
    "<=": int.__le__,
    "=": int.__eq__,
    "!=": int.__ne__,
    ">": int.__gt__,
    ">=": int.__ge__,
}


def algolia_time(value: datetime) -> str:
    """`created_at` as the HN index renders it: ISO 8601, UTC, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_datetime(value: Any, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _words(text: str) -> list[str]:
    return _TOKEN_RE.findall(html.unescape(re.sub(r"<[^>]*>", " ", text)).casefold())


def _error(status: int, message: str) -> ApiError:
    return ApiError(json_answer(status, {"message": message, "status": status}))


class HackerNewsApiSimulator(PlatformSimulator):
    """Algolia's HN Search API, with stories, comments and raw hits that tests add."""

    name = "Hacker News"
    server_version = "nginx"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: int = REQUESTS_PER_HOUR,
        rate_window_seconds: int = 3600,
    ) -> None:
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        super().__init__(host, port)

    def reset_content(self) -> None:
        # item id -> hit (with every field, as the index stores it)
        self._items: dict[str, dict[str, Any]] = {}
        # (created_at_i, order, raw value): served as they are whatever the query
        self._raw_hits: list[tuple[int, int, Any]] = []
        self._ids = itertools.count(FIRST_ITEM_ID)
        self._order = itertools.count()
        self._window = RateWindow(self.rate_limit, self.rate_window_seconds)

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", r"/api/v1/search_by_date", self._search_by_date),
            ("GET", r"/api/v1/search", self._search_by_relevance),
            ("GET", r"/api/v1/items/(?P<item_id>[^/]+)", self._item),
        ]

    def error_answer(self, status: int) -> Answer:
        return json_answer(status, {"message": HTTPStatus(status).phrase, "status": status})

    def not_found(self, request: Request) -> Answer:
        return json_answer(404, {"message": "Not Found", "status": 404})

    # -- content --

    def add_post(
        self,
        *,
        kind: str = "comment",
        text: str = "",
        title: str | None = None,
        author: str = "hn_user",
        created_at: datetime | str | int | None = None,
        id: str | int | None = None,
        url: str | None = None,
        points: int | None = None,
        num_comments: int | None = None,
        parent_id: str | int | None = None,
        story_id: str | int | None = None,
    ) -> dict[str, Any]:
        """Index a story or a comment; returns the hit as search serves it.

        `text` is HTML (HN's own: paragraphs as `<p>`, entities escaped): a story's
        story_text, a comment's comment_text. A comment's story defaults to its parent's
        story, or its parent when that is a story.
        """
        if kind not in ("story", "comment"):
            raise ValueError(f"kind must be story or comment, not {kind!r}")
        if kind == "story" and not title:
            raise ValueError("a story needs a title")
        if kind == "comment" and not text:
            raise ValueError("a comment needs text")
        with self._lock:
            created = _as_datetime(created_at, self.now())
            object_id = str(id if id is not None else next(self._ids))
            second = int(created.timestamp())
            hit: dict[str, Any] = {
                "_tags": [kind, f"author_{author}"],
                "author": author,
                "created_at": algolia_time(created),
                "created_at_i": second,
                "objectID": object_id,
                "updated_at": algolia_time(created),
            }
            if kind == "story":
                story_id = object_id
                hit.update(
                    title=title,
                    url=url,
                    points=1 if points is None else points,
                    num_comments=0 if num_comments is None else num_comments,
                    story_id=int(object_id),
                    children=[],
                )
                if text:
                    hit["story_text"] = text
                for prefix, tag in (("Show HN:", "show_hn"), ("Ask HN:", "ask_hn")):
                    if title and title.startswith(prefix):
                        hit["_tags"].append(tag)
            else:
                parent = self._items.get(str(parent_id)) if parent_id is not None else None
                if story_id is None and parent is not None:
                    story_id = parent["story_id"]
                story = self._items.get(str(story_id)) if story_id is not None else None
                hit.update(
                    comment_text=text,
                    parent_id=int(parent_id) if parent_id is not None else None,
                    story_id=int(story_id) if story_id is not None else None,
                    story_title=story.get("title") if story else None,
                    story_url=story.get("url") if story else None,
                    points=points,
                )
                if parent is not None and "children" in parent:
                    parent["children"].append(int(object_id))
                if story is not None:
                    story["num_comments"] += 1
            if story_id is not None:
                hit["_tags"].append(f"story_{story_id}")
            self._items[object_id] = hit
            return dict(hit)

    def add_raw_hit(self, raw: Any, *, created_at_i: int | None = None) -> None:
        """Serve `raw` as a hit, exactly as given, in every search whatever its query and
        filters; it sorts as made at `created_at_i` (default now). For malformed items."""
        with self._lock:
            second = int(self.now().timestamp()) if created_at_i is None else created_at_i
            self._raw_hits.append((second, next(self._order), raw))

    def item(self, object_id: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._items.get(object_id)
            return dict(hit) if hit else None

    # -- routes --

    def _search_by_date(self, request: Request) -> Answer:
        return self._search(request, by_date=True)

    def _search_by_relevance(self, request: Request) -> Answer:
        return self._search(request, by_date=False)

    def _search(self, request: Request, *, by_date: bool) -> Answer:
        self._spend_budget()
        query = request.query.get("query", "")
        tag_groups = _parse_tags(request.query.get("tags", ""))
        numeric = _parse_numeric_filters(request.query.get("numericFilters", ""))
        hits_per_page = _int_parameter(request, "hitsPerPage", HITS_PER_PAGE_DEFAULT)
        if not 0 <= hits_per_page <= HITS_PER_PAGE_MAX:
            raise _error(400, f"hitsPerPage must be between 0 and {HITS_PER_PAGE_MAX}")
        page = _int_parameter(request, "page", 0)
        if page < 0:
            raise _error(400, "page must be a positive integer")
        words = _words(query)
        with self._lock:
            # (created_at_i, tie-break, the hit as served)
            matched = [
                (hit["created_at_i"], int(hit["objectID"]), _with_highlight(hit, words))
                for hit in self._items.values()
                if _matches_words(hit, words)
                and _matches_tags(hit, tag_groups)
                and all(_matches_numeric(hit, f) for f in numeric)
            ]
            matched += [(second, -1 - order, raw) for second, order, raw in self._raw_hits]
        if by_date:
            matched.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        else:
            matched.sort(key=lambda entry: _points_of(entry[2]), reverse=True)
        reachable = matched[:PAGINATION_LIMIT]
        start = page * hits_per_page
        served = reachable[start : start + hits_per_page] if hits_per_page else []
        nb_pages = ceil(len(reachable) / hits_per_page) if hits_per_page else 0
        params = urlencode(
            {k: v for k, v in request.query.items()}, safe="(),"
        )  # Algolia echoes the parameters it ran
        return json_answer(
            200,
            {
                "exhaustive": {"nbHits": True, "typo": True},
                "exhaustiveNbHits": True,
                "exhaustiveTypo": True,
                "hits": [entry[2] for entry in served],
                "hitsPerPage": hits_per_page,
                "nbHits": len(matched),
                "nbPages": nb_pages,
                "page": page,
                "params": params,
                "processingTimeMS": 1,
                "query": query,
                "serverTimeMS": 2,
            },
        )

    def _item(self, request: Request, item_id: str) -> Answer:
        self._spend_budget()
        with self._lock:
            hit = self._items.get(item_id)
            if hit is None:
                raise _error(404, "Not Found")
            children = [
                self._items[str(c)] for c in hit.get("children", []) if str(c) in self._items
            ]
            return json_answer(
                200,
                {
                    "id": int(item_id),
                    "created_at": hit["created_at"],
                    "created_at_i": hit["created_at_i"],
                    "type": hit["_tags"][0],
                    "author": hit["author"],
                    "title": hit.get("title"),
                    "url": hit.get("url"),
                    "text": hit.get("story_text") or hit.get("comment_text"),
                    "points": hit.get("points"),
                    "parent_id": hit.get("parent_id"),
                    "story_id": hit.get("story_id"),
                    "children": [
                        {"id": int(c["objectID"]), "author": c["author"]} for c in children
                    ],
                },
            )

    def _spend_budget(self) -> None:
        with self._lock:
            allowed = self._window.spend(self.now())
        if not allowed:
            # Algolia's 429 names no reset time: no Retry-After, no X-RateLimit-* headers.
            raise _error(429, "Too many requests")


# --- search semantics -------------------------------------------------------------------------


def _parse_tags(value: str) -> list[list[str]]:
    """`a,(b,c)` -> [["a"], ["b", "c"]]: every group must match, one tag of a group suffices."""
    groups: list[list[str]] = []
    open_group: list[str] | None = None
    for part in re.findall(r"\(|\)|[^,()]+", value):
        part = part.strip()
        if part == "(":
            if open_group is not None:
                raise _error(400, "Nested parentheses are not supported in tags")
            open_group = []
        elif part == ")":
            if open_group is None:
                raise _error(400, "Unbalanced parentheses in tags")
            groups.append(open_group)
            open_group = None
        elif part:
            if not _TAG_RE.match(part):
                raise _error(400, f"Invalid tag: {part}")
            if open_group is None:
                groups.append([part])
            else:
                open_group.append(part)
    if open_group is not None:
        raise _error(400, "Unbalanced parentheses in tags")
    return groups


def _parse_numeric_filters(value: str) -> list[tuple[str, str, int]]:
    filters = []
    for condition in filter(None, (c.strip() for c in value.split(","))):
        match = _NUMERIC_RE.match(condition)
        if match is None:
            raise _error(
                400,
                f"Invalid syntax for numeric condition:{condition}. Available numerical fields: "
                + ", ".join(NUMERIC_ATTRIBUTES),
            )
        filters.append((match.group(1), match.group(2), int(match.group(3))))
    return filters


def _int_parameter(request: Request, name: str, default: int) -> int:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _error(400, f"Invalid value for {name}: {value} is not an integer") from None


def _matches_words(hit: dict[str, Any], words: list[str]) -> bool:
    if not words:
        return True
    searchable = [
        token
        for key in ("title", "url", "author", "story_text", "comment_text")
        for token in _words(str(hit.get(key) or ""))
    ]
    *whole, last = words
    return all(word in searchable for word in whole) and any(
        token.startswith(last) for token in searchable
    )


def _matches_tags(hit: dict[str, Any], groups: list[list[str]]) -> bool:
    return all(any(tag in hit["_tags"] for tag in group) for group in groups)


def _matches_numeric(hit: dict[str, Any], condition: tuple[str, str, int]) -> bool:
    attribute, operator, number = condition
    value = hit.get(attribute)
    return isinstance(value, int) and _OPERATORS[operator](value, number)


def _points_of(hit: Any) -> int:
    points = hit.get("points") if isinstance(hit, dict) else None
    return points if isinstance(points, int) else 0


def _with_highlight(hit: dict[str, Any], words: list[str]) -> dict[str, Any]:
    """The hit with a `_highlightResult` saying which query words each field holds."""
    highlight = {}
    for key in ("title", "url", "author", "story_text", "comment_text"):
        value = hit.get(key)
        if isinstance(value, str):
            matched = [w for w in words if w in _words(value)]
            highlight[key] = {
                "value": value,
                "matchLevel": "none"
                if not matched
                else ("full" if len(matched) == len(words) else "partial"),
                "matchedWords": matched,
            }
    return {**hit, "_highlightResult": highlight}


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from listening.simulators.generator import iter_mentions

    parser = simulator_arguments(
        "A local Hacker News Search API (Algolia) with demo stories and comments.",
        default_port=8768,
    )
    parser.add_argument("--rate-limit", type=int, default=REQUESTS_PER_HOUR, help="per hour")
    args = parser.parse_args(argv)
    simulator = HackerNewsApiSimulator(host=args.host, port=args.port, rate_limit=args.rate_limit)
    mentions = iter_mentions(
        brand_name=args.brand_name, brand_handle=args.brand_handle, seed=args.seed
    )
    count = itertools.count()

    def add(post: dict[str, Any], created_at: datetime) -> None:
        # One in four demo mentions is a story (its text as the title), the rest comments.
        author = re.sub(r"[^A-Za-z0-9_-]", "", post["author"]["username"])[:15] or "hn_user"
        if next(count) % 4 == 0:
            simulator.add_post(
                kind="story", title=post["text"], author=author, created_at=created_at
            )
        else:
            simulator.add_post(
                kind="comment", text=html.escape(post["text"]), author=author, created_at=created_at
            )

    return serve_with_demo_posts(simulator, args, mentions, add)


if __name__ == "__main__":
    raise SystemExit(main())
