"""A local web server of RSS 2.0 and Atom 1.0 feeds, for tests, demos and development.

Each feed lives at `/feeds/<slug>` and is configured on its own: RSS or Atom, whether the
server sends an ETag and a Last-Modified and answers conditional requests with 304 (strong
ETags over the body, as most web servers and CDNs do; Last-Modified from the newest change),
an optional HTTP Basic login (401 with WWW-Authenticate), and an optional budget of requests
per window answered 429 with Retry-After. Errors are small HTML pages, as web servers send.
`add_raw_entry` puts an XML fragment into a feed verbatim (malformed items), and `fail_next`
with a 200 serves any body (a web page, a truncated feed).

Not modelled: redirects, compression (gzip), RSS 1.0/RDF, JSON Feed, WebSub, HEAD requests,
`ttl`/`skipHours`, and servers that send a Last-Modified but ignore If-Modified-Since (set
`conditional=False` to ignore both).

Stdlib only, no Django (see `listening.simulators.base`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from listening.simulators.base import (
    Answer,
    PlatformSimulator,
    RateWindow,
    Request,
    serve_with_demo_posts,
    simulator_arguments,
)

RSS = "application/rss+xml; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"
HTML = "text/html; charset=utf-8"


@dataclass
class FeedConfig:
    slug: str
    kind: str = "rss"  # "rss" (RSS 2.0) or "atom" (Atom 1.0)
    title: str = "Northwind Coffee news"
    link: str = "https://northwind.example/"
    language: str = "en-us"
    etag: bool = True
    last_modified: bool = True
    conditional: bool = True  # answer If-None-Match / If-Modified-Since with 304
    username: str = ""  # HTTP Basic, when set
    password: str = ""
    rate_limit: int | None = None  # requests per rate_window_seconds, then 429
    rate_window_seconds: int = 60
    # (published, order, XML fragment): entries as the feed renders them, newest first
    entries: list[tuple[datetime, int, str]] = field(default_factory=list)
    changed_at: datetime | None = None
    window: RateWindow | None = None


def _html_page(status: int, message: str = "") -> Answer:
    phrase = HTTPStatus(status).phrase
    body = (
        f"<!DOCTYPE html>\n<html><head><title>{status} {phrase}</title></head>"
        f"<body><h1>{phrase}</h1><p>{html.escape(message)}</p></body></html>\n"
    )
    return Answer(status, body.encode(), HTML)


def _rfc822(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FeedsSimulator(PlatformSimulator):
    """Several feeds on one server, each with its own caching, login and limits."""

    name = "RSS/Atom feeds"
    server_version = "nginx"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._feed_defaults: dict[str, dict[str, Any]] = {
            "news": {"kind": "rss", "title": "Northwind Coffee news"},
            "blog": {
                "kind": "atom",
                "title": "The Roasting Blog",
                "link": "https://roasting.example/",
                "language": "en-gb",
            },
        }
        super().__init__(host, port)

    def reset_content(self) -> None:
        self._feeds: dict[str, FeedConfig] = {
            slug: FeedConfig(slug=slug, **options) for slug, options in self._feed_defaults.items()
        }
        self._order = itertools.count()

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("GET", r"/feeds/(?P<slug>[A-Za-z0-9_.-]+)", self._serve_feed)]

    def error_answer(self, status: int) -> Answer:
        return _html_page(status)

    def not_found(self, request: Request) -> Answer:
        return _html_page(404, f"{request.path} is not here")

    # -- configuration and content --

    def feed_url(self, slug: str) -> str:
        return f"{self.base_url}/feeds/{slug}"

    def add_feed(self, slug: str, **options: Any) -> FeedConfig:
        """Add (or replace) a feed; `options` are FeedConfig's fields. Survives no reset."""
        with self._lock:
            feed = FeedConfig(slug=slug, **options)
            self._feeds[slug] = feed
            return feed

    def configure(self, slug: str, **options: Any) -> FeedConfig:
        """Change a feed's settings (caching, login, limits) without touching its entries."""
        with self._lock:
            feed = self._feed(slug)
            for name, value in options.items():
                if not hasattr(feed, name) or name in ("slug", "entries"):
                    raise ValueError(f"no feed setting {name!r}")
                setattr(feed, name, value)
            feed.window = None
            return feed

    def add_post(
        self,
        *,
        feed: str = "news",
        title: str = "",
        summary: str = "",
        link: str | None = None,
        id: str | None = None,
        author: str = "",
        author_email: str = "",
        published: datetime | str | None = None,
        updated: datetime | str | None = None,
        summary_type: str = "html",
    ) -> dict[str, Any]:
        """Publish an entry. `summary` is HTML unless `summary_type` is "text". Returns the
        entry, its times as RFC 3339 strings. RSS renders id as <guid> (isPermaLink="false"
        unless it is the link)."""
        with self._lock:
            config = self._feed(feed)
            order = next(self._order)
            when = _as_datetime(published, self.now())
            entry = {
                "feed": feed,
                "title": title,
                "summary": summary,
                "link": link if link is not None else f"{config.link}posts/{order}",
                "id": id,
                "author": author,
                "author_email": author_email,
                "published": when,
                "updated": _as_datetime(updated, when),
            }
            if entry["id"] is None:
                entry["id"] = (
                    entry["link"] if config.kind == "rss" else f"tag:northwind.example,2026:{order}"
                )
            render = _rss_item if config.kind == "rss" else _atom_entry
            self._publish(config, when, order, render(entry, summary_type))
            # As JSON can carry it (POST /_sim/posts answers with it).
            return {**entry, "published": _rfc3339(when), "updated": _rfc3339(entry["updated"])}

    def add_raw_entry(
        self, xml: str, *, feed: str = "news", published: datetime | None = None
    ) -> None:
        """Put `xml` into the feed verbatim where an entry goes (sorted as made at
        `published`, default now): a malformed or hostile item."""
        with self._lock:
            self._publish(self._feed(feed), published or self.now(), next(self._order), xml)

    def remove_entries(self, feed: str) -> None:
        with self._lock:
            config = self._feed(feed)
            config.entries.clear()
            config.changed_at = self.now()

    def _publish(self, config: FeedConfig, when: datetime, order: int, xml: str) -> None:
        config.entries.append((when, order, xml))
        config.entries.sort(key=lambda item: (item[0], item[1]), reverse=True)
        config.changed_at = self.now()

    def _feed(self, slug: str) -> FeedConfig:
        try:
            return self._feeds[slug]
        except KeyError:
            raise ValueError(f"no feed {slug!r}; add it with add_feed") from None

    # -- serving --

    def _serve_feed(self, request: Request, slug: str) -> Answer:
        with self._lock:
            config = self._feeds.get(slug)
            if config is None:
                return self.not_found(request)
            if config.username and not _authorised(request, config):
                answer = _html_page(401, "This feed needs a login.")
                answer.headers["WWW-Authenticate"] = 'Basic realm="feeds"'
                return answer
            if config.rate_limit is not None:
                if config.window is None:
                    config.window = RateWindow(config.rate_limit, config.rate_window_seconds)
                if not config.window.spend(self.now()):
                    seconds = max(1, int(config.window.reset_at - self.now().timestamp()))
                    answer = _html_page(429, "Slow down.")
                    answer.headers["Retry-After"] = str(seconds)
                    return answer
            body = _render_feed(config, self.now()).encode("utf-8")
            changed_at = config.changed_at or self.now()
        headers: dict[str, str] = {}
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        last_modified = _rfc822(changed_at.replace(microsecond=0))
        if config.etag:
            headers["ETag"] = etag
        if config.last_modified:
            headers["Last-Modified"] = last_modified
        if config.conditional and _not_modified(request, config, etag, changed_at):
            return Answer(304, b"", RSS if config.kind == "rss" else ATOM, headers)
        return Answer(200, body, RSS if config.kind == "rss" else ATOM, headers)


def _as_datetime(value: datetime | str | None, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _authorised(request: Request, config: FeedConfig) -> bool:
    scheme, _, credential = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username, _, password = base64.b64decode(credential).decode().partition(":")
    except ValueError:
        return False
    return (username, password) == (config.username, config.password)


def _not_modified(request: Request, config: FeedConfig, etag: str, changed_at: datetime) -> bool:
    """RFC 9110: If-None-Match wins when sent; else If-Modified-Since against the change time."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        if not config.etag:
            return False
        sent = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in sent or etag in sent
    if_modified_since = request.headers.get("If-Modified-Since")
    if if_modified_since and config.last_modified:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return changed_at.replace(microsecond=0) <= since
    return False


# --- rendering --------------------------------------------------------------------------------


def _text(value: str) -> str:
    return escape(value)


def _rss_item(entry: dict[str, Any], summary_type: str) -> str:
    summary = entry["summary"] if summary_type == "html" else html.escape(entry["summary"])
    guid_is_link = entry["id"] == entry["link"]
    parts = ["<item>"]
    if entry["title"]:
        parts.append(f"<title>{_text(entry['title'])}</title>")
    if entry["link"]:
        parts.append(f"<link>{_text(entry['link'])}</link>")
    if summary:
        parts.append(f"<description>{_text(summary)}</description>")
    if entry["author"]:
        # RSS 2.0's <author> is an email address; the name goes in parentheses.
        email = entry["author_email"] or "noreply@northwind.example"
        parts.append(f"<author>{_text(email)} ({_text(entry['author'])})</author>")
    parts.append(
        f"<guid isPermaLink={quoteattr('true' if guid_is_link else 'false')}>{_text(entry['id'])}</guid>"
    )
    parts.append(f"<pubDate>{_rfc822(entry['published'])}</pubDate>")
    parts.append("</item>")
    return "".join(parts)


def _atom_entry(entry: dict[str, Any], summary_type: str) -> str:
    parts = ["<entry>"]
    if entry["title"]:
        parts.append(f'<title type="text">{_text(entry["title"])}</title>')
    if entry["link"]:
        parts.append(f'<link rel="alternate" type="text/html" href={quoteattr(entry["link"])}/>')
    parts.append(f"<id>{_text(entry['id'])}</id>")
    parts.append(f"<published>{_rfc3339(entry['published'])}</published>")
    parts.append(f"<updated>{_rfc3339(entry['updated'])}</updated>")
    if entry["author"]:
        email = f"<email>{_text(entry['author_email'])}</email>" if entry["author_email"] else ""
        parts.append(f"<author><name>{_text(entry['author'])}</name>{email}</author>")
    if entry["summary"]:
        kind = "html" if summary_type == "html" else "text"
        parts.append(f'<summary type="{kind}">{_text(entry["summary"])}</summary>')
    parts.append("</entry>")
    return "".join(parts)


def _render_feed(config: FeedConfig, now: datetime) -> str:
    items = "\n".join(xml for _, _, xml in config.entries)
    changed = config.changed_at or now
    if config.kind == "rss":
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0">\n<channel>\n'
            f"<title>{_text(config.title)}</title>\n<link>{_text(config.link)}</link>\n"
            f"<description>{_text(config.title)}</description>\n"
            f"<language>{_text(config.language)}</language>\n"
            f"<lastBuildDate>{_rfc822(changed)}</lastBuildDate>\n"
            f"{items}\n</channel>\n</rss>\n"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang={quoteattr(config.language)}>\n'
        f"<title>{_text(config.title)}</title>\n"
        f'<link rel="alternate" type="text/html" href={quoteattr(config.link)}/>\n'
        f"<id>{_text(config.link)}</id>\n<updated>{_rfc3339(changed)}</updated>\n"
        f"{items}\n</feed>\n"
    )


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from listening.simulators.generator import iter_mentions

    parser = simulator_arguments(
        "Local RSS 2.0 and Atom 1.0 feeds (/feeds/news, /feeds/blog) with demo entries.",
        default_port=8769,
    )
    args = parser.parse_args(argv)
    simulator = FeedsSimulator(host=args.host, port=args.port)
    mentions = iter_mentions(
        brand_name=args.brand_name, brand_handle=args.brand_handle, seed=args.seed
    )
    feeds = itertools.cycle(("news", "blog"))

    def add(post: dict[str, Any], published: datetime) -> None:
        text = post["text"]
        title = text if len(text) <= 70 else text[:67].rsplit(" ", 1)[0] + "…"
        simulator.add_post(
            feed=next(feeds),
            title=title,
            summary=f"<p>{html.escape(text)}</p>",
            author=post["author"]["name"],
            published=published,
        )

    return serve_with_demo_posts(simulator, args, mentions, add)


if __name__ == "__main__":
    raise SystemExit(main())
