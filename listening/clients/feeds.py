"""RSS and Atom feeds, read-only: one feed per source, fetched with `requests`, read by
feedparser. The only module of Earshot that imports feedparser.

A feed has no search: it is fetched whole, and this client keeps the entries whose text holds
the words it is asked for (FEED_SYNTAX expresses nothing else, so those words are the whole
"remote" query); polling then applies the rest of the keyword (exclusions, OR, lang:...).

Cursors: `since_id` carries the feed's last ETag and Last-Modified (as JSON), sent back as
If-None-Match / If-Modified-Since. A 304 is an empty page that keeps the cursor. A feed
without validators is fetched whole each time: storage keeps each entry once. There is no
paging (`next_token` is always None).

Malformed feeds: feedparser flags them (`bozo`) and still reads what it can. The entries it
could read are kept (a warning is logged); only when none could be read is the problem
named, as a RejectedItem, and the cursor left where it was so the next poll reads the feed
again.

Hostile feeds: the body is read up to 5 MB, transcoded to UTF-8, and rid of what feedparser
cannot survive (see `_prepared_for_feedparser`) before it is parsed; ids, names and links are
cut to what Earshot's columns hold, and text is cleaned of NULs and lone surrogates.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html import unescape
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import requests
from django.conf import settings
from feedparser.encodings import convert_to_utf8
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from config.addresses import AddressRefused, fetch_address_problem, public_address_for
from listening.clients.base import (
    AuthenticationFailed,
    ConnectionCheck,
    FetchedAuthor,
    FetchedPost,
    PlatformError,
    PlatformUnavailable,
    PostedReply,
    RateLimited,
    RejectedItem,
    RequestRejected,
    SearchPage,
)
from listening.clients.text import clean_text, html_to_text, plain_text_tidy
from listening.query import FEED_SYNTAX, Query, QueryablePost, QuerySyntaxError, parse_query

logger = logging.getLogger(__name__)

MAX_FEED_BYTES = 5 * 1024 * 1024
# A whole article in a summary is not a mention: keep the start of it.
MAX_TEXT_CHARS = 10_000
# Feeds publish no budget; a 429 without Retry-After means "less often": a quarter of an hour.
RATE_LIMIT_PAUSE = timedelta(minutes=15)
CURSOR_MAX_LENGTH = 500
EXTERNAL_ID_MAX_LENGTH = 255  # Mention.external_id, Author.external_id
URL_MAX_LENGTH = 1000  # Mention.url, Author.url
USERNAME_MAX_LENGTH = 100  # Author.username
NAME_MAX_LENGTH = 200  # Author.name
# An entry dated further ahead than this is taken to be dated now: a feed's clock is not ours.
FUTURE_SLACK = timedelta(days=1)
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
USER_AGENT = "Earshot social listening (feed reader)"
NO_WRITE_API = (
    "RSS and Atom feeds have no write API: answer on the platform and mark the mention handled"
)
# Both linear: possessive quantifiers, and an attribute name starts only where a name can.
_LINK_TAG_RE = re.compile(r"<link\b[^<>]*+>", re.IGNORECASE)
_ATTRIBUTE_RE = re.compile(r"""(?<![\w:-])([\w:-]++)\s*+=\s*+("[^"]*+"|'[^']*+'|[^\s"'>]++)""")
_FEED_ROOT_RE = re.compile(rb"<(?:rss|feed|rdf:rdf)[\s>]")
AUTHOR_ELEMENT_MAX_BYTES = 4096
_AUTHOR_LOCAL_NAMES = frozenset(
    {b"author", b"creator", b"publisher", b"managingeditor", b"webmaster", b"owner"}
)
# End tags that also end an author-like element left open (as the lenient parser reads it).
_AUTHOR_ENCLOSURES = frozenset({b"item", b"entry", b"channel", b"feed", b"source"})
_OPAQUE_MARKUP = ((b"<![CDATA[", b"]]>"), (b"<!--", b"-->"), (b"<?", b"?>"), (b"<!", b">"))
_FIRST_ELEMENT_RE = re.compile(rb"<\w")  # as feedparser finds the end of the prolog
_TAG_START_RE = re.compile(rb"<(/?)([A-Za-z_][\w.:-]*)")
# What feedparser's lenient parser takes for a character reference (";" optional).
_CHARACTER_REFERENCE_RE = re.compile(rb"&#(?:([0-9]{1,12})|[xX]([0-9a-fA-F]{1,12}));?")
_RSS_AUTHOR_RE = re.compile(r"^\s*[^\s@()]+@[^\s()]+\s*\((.+)\)\s*$")
_LANG_RE = re.compile(r"^([a-z]{2,3})(?:[-_].*)?$")


# --- cursor -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Validators:
    """What a feed server said to ask it with next time, to answer 304 if nothing changed."""

    etag: str = ""
    modified: str = ""

    def encode(self) -> str:
        """Compact JSON, at most CURSOR_MAX_LENGTH characters (a huge ETag is dropped)."""
        for payload in (
            {"etag": self.etag, "modified": self.modified},
            {"modified": self.modified},
        ):
            encoded = json.dumps(
                {k: v for k, v in payload.items() if v}, separators=(",", ":"), ensure_ascii=False
            )
            if len(encoded) <= CURSOR_MAX_LENGTH:
                return encoded
        return "{}"

    @classmethod
    def decode(cls, since_id: str | None) -> Validators:
        if not since_id:
            return cls()
        try:
            payload = json.loads(since_id)
            return cls(etag=str(payload.get("etag", "")), modified=str(payload.get("modified", "")))
        except (ValueError, AttributeError):
            logger.warning("Ignoring an unreadable feed cursor %.80r", since_id)
            return cls()

    @classmethod
    def of(cls, response: requests.Response) -> Validators:
        return cls(
            etag=_header_value(response, "ETag"), modified=_header_value(response, "Last-Modified")
        )

    def request_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.modified:
            headers["If-Modified-Since"] = self.modified
        return headers


def _header_value(response: requests.Response, name: str) -> str:
    # A header value must be sendable back as one: latin-1, no line breaks.
    value = response.headers.get(name, "").strip()
    if not value or "\n" in value or "\r" in value:
        return ""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return ""
    return value


# --- entries ----------------------------------------------------------------------------------


def _capped_id(value: str) -> str:
    value = clean_text(value).strip()
    if len(value) <= EXTERNAL_ID_MAX_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def _is_global_id(value: str) -> bool:
    """Whether an entry id names itself anywhere (a URL, urn: or tag: URI), rather than
    only within its feed ("42"), where another feed's "42" would collide with it."""
    return "://" in value or value.lower().startswith(("urn:", "tag:"))


def entry_external_id(entry: Any, feed_url: str) -> str:
    """The entry's id, else its link, else a hash of its title and date; namespaced by the
    feed where it is not globally unique; hashed when longer than 255 characters."""
    for key in ("id", "link"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            value = value.strip()
            return _capped_id(value if _is_global_id(value) else f"{feed_url}#{value}")
    fingerprint = "\n".join(
        (feed_url, str(entry.get("title", "")), str(entry.get("published", "")))
    )
    return "sha256:" + hashlib.sha256(fingerprint.encode("utf-8", "replace")).hexdigest()


def _web_url(value: Any) -> str:
    """`value` if it is an http(s) address that fits Earshot's url columns, else ""."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    if len(value) > URL_MAX_LENGTH or urlsplit(value).scheme not in ("http", "https"):
        return ""
    return value if clean_text(value) == value and " " not in value else ""


def _readable(detail: Any, fallback: Any) -> str:
    """A feedparser text construct (title_detail, summary_detail) as plain text."""
    value = detail.get("value") if isinstance(detail, dict) else fallback
    if not isinstance(value, str):
        return ""
    kind = detail.get("type", "") if isinstance(detail, dict) else ""
    return plain_text_tidy(value) if kind == "text/plain" else html_to_text(value)


def entry_text(entry: Any) -> str:
    title = _readable(entry.get("title_detail"), entry.get("title"))
    body = _readable(entry.get("summary_detail"), entry.get("summary"))
    if not body and entry.get("content"):
        first = entry["content"][0]
        body = _readable(first, first.get("value") if isinstance(first, dict) else None)
    parts = [title] if title else []
    if body and body != title:
        parts.append(body)
    text = "\n\n".join(parts)
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1].rstrip() + "…"


def _entry_time(entry: Any, now: datetime) -> datetime:
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                moment = datetime(*parsed[:6], tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
            return moment if moment <= now + FUTURE_SLACK else now
    return now


def _language(*candidates: Any) -> str:
    """The first candidate that is a language tag, as its primary subtag ("en-GB" -> "en")."""
    for candidate in candidates:
        if isinstance(candidate, str) and (match := _LANG_RE.match(candidate.strip().lower())):
            return match.group(1)
    return ""


def _author_name(author: Any, detail_name: Any) -> str:
    """An entry's author's name. RSS 2.0 writes `email (Name)`, which feedparser splits
    wrongly when the address's top-level domain is longer than four letters (".example"
    gives the name "ple (Name"), so that form is read here."""
    if isinstance(author, str) and (match := _RSS_AUTHOR_RE.match(author)):
        return plain_text_tidy(match.group(1))
    for candidate in (detail_name, author):
        if isinstance(candidate, str) and candidate.strip():
            return plain_text_tidy(candidate)
    return ""


@dataclass(frozen=True, slots=True)
class _Feed:
    """What every entry of one fetched feed shares."""

    url: str
    title: str
    link: str
    lang: str

    def author_of(self, entry: Any) -> FetchedAuthor:
        """The entry's author, else the feed itself (by its title)."""
        detail = entry.get("author_detail") if isinstance(entry.get("author_detail"), dict) else {}
        name = _author_name(entry.get("author"), detail.get("name"))
        if name:
            return FetchedAuthor(
                external_id=_capped_id(f"{self.url}#author={name}"),
                username=name[:USERNAME_MAX_LENGTH],
                name=name[:NAME_MAX_LENGTH],
                followers_count=0,
                verified=False,
                url=_web_url(detail.get("href")) or self.link,
            )
        title = self.title or urlsplit(self.url).hostname or self.url
        return FetchedAuthor(
            external_id=_capped_id(self.url),
            username=title[:USERNAME_MAX_LENGTH],
            name=title[:NAME_MAX_LENGTH],
            followers_count=0,
            verified=False,
            url=self.link,
        )


def parse_entry(entry: Any, feed: _Feed, *, now: datetime) -> tuple[FetchedPost, FetchedAuthor]:
    """One feed entry as a post and its author; raises ValueError with a readable reason."""
    text = entry_text(entry)
    if not text:
        raise ValueError("the entry has neither a title nor a summary")
    external_id = entry_external_id(entry, feed.url)
    author = feed.author_of(entry)
    detail = entry.get("summary_detail")
    post = FetchedPost(
        external_id=external_id,
        text=text,
        author_external_id=author.external_id,
        posted_at=_entry_time(entry, now),
        conversation_id=external_id,
        lang=_language(detail.get("language") if isinstance(detail, dict) else None, feed.lang),
        in_reply_to_user_id="",
        referenced_posts=[],
        public_metrics={},
        url=_web_url(entry.get("link")),
    )
    return post, author


# --- telling a feed from a web page -----------------------------------------------------------


def _looks_like_a_web_page(content_type: str, body: bytes) -> bool:
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if _FEED_ROOT_RE.search(head):
        return False  # a feed served as text/html by a careless server is still a feed
    return head.startswith((b"<!doctype html", b"<html")) or content_type in (
        "text/html",
        "application/xhtml+xml",
    )


def _announced_feed(body: bytes, page_url: str) -> str:
    """The first feed a web page announces, <link rel="alternate" type="application/rss+xml"
    href="...">, as an absolute address; "" if none. (A regular expression, not html.parser,
    which can take quadratic time on a hostile page.)"""
    page = body[:262_144].decode("utf-8", "replace")
    for tag in _LINK_TAG_RE.findall(page):
        attributes = {
            name.lower(): value.strip("\"'") for name, value in _ATTRIBUTE_RE.findall(tag)
        }
        if (
            "alternate" in attributes.get("rel", "").lower().split()
            and attributes.get("type", "").lower()
            in ("application/rss+xml", "application/atom+xml")
            and attributes.get("href")
        ):
            return _web_url(urljoin(page_url, unescape(attributes["href"])))
    return ""


# --- the client -------------------------------------------------------------------------------


class _PublicAddressesOnly(HTTPAdapter):
    """Fetches from public addresses only, so a feed address typed by a person cannot point
    Earshot at its own network (SSRF): the feed's and every redirect's.

    Each request's host is resolved once, just before connecting, every address checked, and
    the connection made to the checked address itself: urllib3 would otherwise resolve the
    name again, and a name that answers a public address first and 127.0.0.1 next (DNS
    rebinding) would pass the check and reach inside. The name stays what the server sees:
    the Host header, and for https the TLS server name (SNI) and the certificate's check.
    """

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        problem = fetch_address_problem(request.url or "", allow_private_address=True)
        if problem:  # not http(s), no host
            raise RequestRejected(f"Not fetched: {problem}")
        return super().send(request, **kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host, port = host_params["host"], host_params["port"]
        default_port = 443 if host_params["scheme"] == "https" else 80
        try:
            address = public_address_for(host, port or default_port)
        except AddressRefused as refused:
            raise RequestRejected(f"Not fetched: {refused}") from None
        if address is None:
            raise PlatformUnavailable(f"{host} does not resolve (now); will retry")
        # A copy: a redirect's request starts from this one's headers, and sets its own Host.
        request.headers = CaseInsensitiveDict(request.headers)
        named = f"[{host}]" if ":" in host else host
        request.headers["Host"] = named if port in (None, default_port) else f"{named}:{port}"
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = host  # SNI
            pool_kwargs["assert_hostname"] = host  # the certificate is checked for the name
        host_params["host"] = f"[{address}]" if ":" in address else address
        return host_params, pool_kwargs


class FeedClient:
    """One RSS or Atom feed, fetched whole and conditionally."""

    platform = "rss"
    syntax = FEED_SYNTAX
    can_reply = False

    def __init__(
        self,
        *,
        feed_url: str,
        username: str = "",
        password: str = "",
        timeout: float | None = None,
        allow_private_address: bool = False,
    ) -> None:
        self.feed_url = feed_url.strip()
        self.timeout = settings.X_REQUEST_TIMEOUT_SECONDS if timeout is None else timeout
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": ACCEPT})
        if not allow_private_address:
            for scheme in ("http://", "https://"):
                self._session.mount(scheme, _PublicAddressesOnly())
        if username or password:
            self._session.auth = (username, password)
        self.now = lambda: datetime.now(UTC)

    def search_page(
        self, *, query: str, since_id: str | None, next_token: str | None
    ) -> SearchPage:
        """The feed's entries whose text holds `query`'s words, newest first.

        `since_id` is the cursor of the last fetch (validators); `next_token` is never set.
        """
        if not self.feed_url:
            raise RequestRejected(
                "The feed source has no address: set the feed's URL under Sources."
            )
        validators = Validators.decode(since_id)
        fetched = self._fetch(validators)
        if fetched is None:  # 304 Not Modified
            return SearchPage(posts=[], authors={}, newest_id=since_id or None, next_token=None)
        response, body = fetched
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if _looks_like_a_web_page(content_type, body):
            announced = _announced_feed(body, response.url)
            hint = (
                f" The page links to a feed at {announced}: use that address." if announced else ""
            )
            raise RequestRejected(
                f"{self.feed_url} is not an RSS or Atom feed: it answered a web page "
                f"({content_type or 'HTML'}).{hint}"
            )
        parsed = self._parse(body, response)
        problem = str(parsed.get("bozo_exception", "")) if parsed.get("bozo") else ""
        if not parsed.entries and not parsed.get("version"):
            if problem:
                raise PlatformUnavailable(
                    f"{self.feed_url} answered something that cannot be read as RSS or Atom "
                    f"({problem}); will retry"
                )
            raise RequestRejected(
                f"{self.feed_url} is not an RSS or Atom feed: its answer is neither "
                f"({content_type or 'no content type'})."
            )
        if problem and not parsed.entries:
            # Nothing could be read: say so, and read it whole again next time.
            reason = f"the feed is malformed and no entry could be read from it: {problem}"
            return SearchPage(
                posts=[],
                authors={},
                newest_id=since_id or None,
                next_token=None,
                rejected=[RejectedItem(raw=body[:500].decode("utf-8", "replace"), reason=reason)],
            )
        if problem:
            logger.warning(
                "The feed %s is malformed (%s); keeping the %d entries read",
                self.feed_url,
                problem,
                len(parsed.entries),
            )
        page = self._page_of(parsed, wanted=_words_of(query))
        page.newest_id = Validators.of(response).encode()
        return page

    def _fetch(self, validators: Validators) -> tuple[requests.Response, bytes] | None:
        """The feed's response and body (at most MAX_FEED_BYTES), or None for a 304."""
        with _translated_errors(self.feed_url):
            response = self._session.get(
                self.feed_url,
                headers=validators.request_headers(),
                timeout=self.timeout,
                stream=True,
            )
            with response:
                if response.status_code == 304:
                    return None
                _raise_for_status(response, feed_url=self.feed_url, now=self.now())
                return response, self._read_capped(response)

    def _parse(self, body: bytes, response: requests.Response) -> Any:
        body, content_type = _prepared_for_feedparser(
            body, response.headers.get("Content-Type", "application/xml")
        )
        try:
            return feedparser.parse(
                body,
                response_headers={
                    "content-type": content_type,
                    "content-location": response.url,
                    "content-language": response.headers.get("Content-Language", ""),
                },
            )
        except Exception as exc:  # feedparser's own failure on a hostile body
            raise PlatformUnavailable(
                f"{self.feed_url} answered a feed that could not be read "
                f"({type(exc).__name__}: {exc}); will retry"
            ) from exc

    def _read_capped(self, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_FEED_BYTES:
            raise _too_large(self.feed_url)
        # requests' timeout bounds each wait, not the whole body: a feed that trickles is cut.
        deadline = time.monotonic() + self.timeout * 2
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > MAX_FEED_BYTES:
                raise _too_large(self.feed_url)
            if time.monotonic() > deadline:
                raise PlatformUnavailable(
                    f"The feed at {self.feed_url} did not finish sending in time; will retry"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _page_of(self, parsed: Any, *, wanted: Query | None) -> SearchPage:
        feed_info = parsed.get("feed", {})
        feed = _Feed(
            url=self.feed_url,
            title=plain_text_tidy(str(feed_info.get("title", "")))[:NAME_MAX_LENGTH],
            link=_web_url(feed_info.get("link")) or _web_url(self.feed_url),
            lang=_language(
                feed_info.get("language"), parsed.get("headers", {}).get("content-language")
            ),
        )
        page = SearchPage(posts=[], authors={}, newest_id=None, next_token=None)
        now = self.now()
        seen: set[str] = set()
        for entry in parsed.entries:
            try:
                post, author = parse_entry(entry, feed, now=now)
            except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
                page.rejected.append(RejectedItem(raw=dict(entry), reason=str(exc)))
                continue
            if post.external_id in seen:
                continue  # a feed that repeats an entry: the first one counts
            seen.add(post.external_id)
            if wanted is not None and not wanted.matches(QueryablePost(text=post.text)):
                continue
            page.posts.append(post)
            page.authors[author.external_id] = author
        page.posts.sort(key=lambda p: p.posted_at, reverse=True)
        return page

    def check_connection(self) -> ConnectionCheck:
        """One GET of the feed, read as polling reads it (the same address checks, size cap
        and parser); unconditional, since a 304 would not show the feed is a feed."""
        page = self.search_page(query="", since_id=None, next_token=None)
        entries = len(page.posts)
        return ConnectionCheck(
            account=f"the feed at {self.feed_url} ({entries} entr{'y' if entries == 1 else 'ies'})"
        )

    def own_posts_page(self, *, since_id: str | None, next_token: str | None) -> SearchPage:
        raise RequestRejected("A feed has no brand account, so there are no own posts to read")

    def post_reply(self, *, text: str, in_reply_to_id: str) -> PostedReply:
        raise RequestRejected(NO_WRITE_API)

    def find_reply(
        self, *, author_username: str, text: str, in_reply_to_id: str
    ) -> PostedReply | None:
        raise RequestRejected(NO_WRITE_API)


def _prepared_for_feedparser(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The body as UTF-8, without what feedparser cannot survive, and the content type that
    now describes it. Transcoding first (with feedparser's own detection) lets the passes
    below see the text whatever the feed's encoding, UTF-16 included."""
    detected: dict[str, Any] = {}
    as_utf8 = convert_to_utf8({"content-type": content_type}, body, detected)
    if detected.get("encoding"):
        mime = content_type.split(";")[0].strip() or "application/xml"
        body, content_type = as_utf8, f"{mime}; charset=utf-8"
    body = _without_entity_declarations(body)
    return _with_bounded_authors(_without_impossible_characters(body)), content_type


def _without_entity_declarations(body: bytes) -> bytes:
    """`body` without the <!ENTITY> declarations of its prolog. feedparser keeps those it
    deems safe, and one `&name;` can then stand for kilobytes: enough to defeat the bound
    on author elements below. Feeds have no need of their own entities."""
    first_element = _FIRST_ELEMENT_RE.search(body)
    prolog_end = first_element.start() if first_element else len(body)
    prolog = body[:prolog_end]
    lowered = prolog.lower()
    kept, position = [], 0
    while (start := lowered.find(b"<!entity", position)) != -1:
        kept.append(prolog[position:start])
        end = prolog.find(b">", start)  # where feedparser, too, takes a declaration to end
        position = len(prolog) if end == -1 else end + 1
    if position == 0:
        return body
    kept.append(prolog[position:])
    return b"".join(kept) + body[prolog_end:]


def _with_bounded_authors(body: bytes) -> bytes:
    """`body` with every author-like element whose content exceeds AUTHOR_ELEMENT_MAX_BYTES
    emptied.

    feedparser looks for an e-mail address in the text of <author>, <dc:creator>,
    <itunes:author>, <managingEditor>, <webMaster>, <dc:publisher> and <itunes:owner> with a
    regular expression that backtracks catastrophically: 100 kB of letters costs it about a
    minute of CPU, holding the GIL. It joins the element's text across nested tags and CDATA
    sections, so the whole element is measured here, in one linear pass: CDATA sections,
    comments and processing instructions are read as opaque, so an end tag hidden in one
    does not end the element. An element left open ends with its item (closed here). No
    real author element comes near the limit; an emptied one makes the entry the feed's own.
    """
    out: list[bytes] = []
    inside: bytes | None = None  # the qualified name of the author-like element we are in
    held: list[bytes] = []  # its content, while within the limit
    held_size = 0
    position, size = 0, len(body)
    while position < size:
        piece, tag, closing, position = _next_piece(body, position)
        if inside is None:
            out.append(piece)
            opens = tag and not closing and not piece.endswith(b"/>")
            if opens and _local_name(tag) in _AUTHOR_LOCAL_NAMES:
                inside, held, held_size = tag, [], 0
            continue
        ends_item = _local_name(tag) in _AUTHOR_ENCLOSURES
        if closing and (tag.lower() == inside.lower() or ends_item):
            if held_size <= AUTHOR_ELEMENT_MAX_BYTES:
                out.extend(held)
            out.append(piece if tag.lower() == inside.lower() else b"</" + inside + b">" + piece)
            inside = None
            continue
        held_size += len(piece)
        if held_size <= AUTHOR_ELEMENT_MAX_BYTES:
            held.append(piece)
    if inside is not None:  # the document ended inside the element
        if held_size <= AUTHOR_ELEMENT_MAX_BYTES:
            out.extend(held)
        out.append(b"</" + inside + b">")
    return b"".join(out)


def _local_name(tag: bytes) -> bytes:
    return tag.lower().rpartition(b":")[2]


def _next_piece(body: bytes, position: int) -> tuple[bytes, bytes, bool, int]:
    """The piece of markup or text at `position`: (bytes, tag name or b"", whether it is an
    end tag, where the next piece starts)."""
    start = body.find(b"<", position)
    if start != position:  # text up to the next "<"
        end = len(body) if start == -1 else start
        return body[position:end], b"", False, end
    for opener, closer in _OPAQUE_MARKUP:
        if body.startswith(opener, position):
            found = body.find(closer, position + len(opener))
            end = len(body) if found == -1 else found + len(closer)
            return body[position:end], b"", False, end
    match = _TAG_START_RE.match(body, position)
    if match is None:  # a "<" that opens no tag is text, as the lenient parser reads it
        return b"<", b"", False, position + 1
    found = body.find(b">", match.end())
    end = len(body) if found == -1 else found + 1
    return body[position:end], match.group(2), bool(match.group(1)), end


def _without_impossible_characters(body: bytes) -> bytes:
    """`body` with character references to what XML cannot hold (surrogates, NUL, beyond
    U+10FFFF) turned into U+FFFD. feedparser's lenient parser, used once a feed proves
    malformed, crashes on them rather than flag them."""

    def replaced(match: re.Match[bytes]) -> bytes:
        decimal, hexadecimal = match.group(1), match.group(2)
        code = int(decimal) if decimal else int(hexadecimal, 16)
        allowed = code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0x10FFFF
        return match.group(0) if allowed and code not in (0xFFFE, 0xFFFF) else b"&#xFFFD;"

    return _CHARACTER_REFERENCE_RE.sub(replaced, body)


def _words_of(query: str) -> Query | None:
    try:
        return parse_query(query) if query.strip() else None
    except QuerySyntaxError:
        logger.warning("Feed query %.80r cannot be read; keeping every entry", query)
        return None


def _too_large(feed_url: str) -> RequestRejected:
    return RequestRejected(
        f"The feed at {feed_url} is larger than {MAX_FEED_BYTES // (1024 * 1024)} MB, the most "
        "Earshot reads; ask its publisher for a shorter feed or use another one."
    )


def _retry_after(response: requests.Response, now: datetime) -> datetime:
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    if value:
        try:
            return parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return now + RATE_LIMIT_PAUSE


def _raise_for_status(response: requests.Response, *, feed_url: str, now: datetime) -> None:
    status = response.status_code
    if status < 400:
        return
    said = f"{status} {response.reason or ''}".strip()
    if status == 429:
        reset_at = _retry_after(response, now)
        raise RateLimited(
            f"The feed at {feed_url} asks to be read less often ({said}); next call allowed at "
            f"{reset_at:%H:%M:%S} UTC",
            reset_at=reset_at,
        )
    if status == 401:
        raise AuthenticationFailed(
            f"The feed at {feed_url} refused the login ({said}). Set or correct its username "
            "and password under Sources."
        )
    if status == 404:
        raise RequestRejected(f"The feed at {feed_url} was not found ({said}): check the address.")
    if status == 410:
        raise RequestRejected(f"The feed at {feed_url} is gone ({said}): its publisher removed it.")
    if 400 <= status < 500:
        raise RequestRejected(f"The feed at {feed_url} refused the request ({said}).")
    raise PlatformUnavailable(f"The feed at {feed_url} answered {said}; will retry")


@contextmanager
def _translated_errors(feed_url: str) -> Iterator[None]:
    try:
        yield
    except PlatformError:
        raise
    except requests.Timeout as exc:
        raise PlatformUnavailable(
            f"The feed at {feed_url} did not answer in time; will retry"
        ) from exc
    except requests.RequestException as exc:
        raise PlatformUnavailable(
            f"Could not reach the feed at {feed_url}: {type(exc).__name__}; will retry"
        ) from exc


def client_for_source(source: Any) -> FeedClient:
    """The client for an RSS/Atom `Source`.

    `source.base_url` IS the feed's address (required: a feed has no public default).
    Reads `source.credentials["username"]` and `["password"]`, both optional, for a feed
    behind HTTP Basic authentication; `source.account_handle` is not used. The feed (and any
    redirect) must be on a public address unless `source.allow_private_address`.
    """
    credentials = source.credentials if isinstance(source.credentials, dict) else {}
    return FeedClient(
        feed_url=source.base_url,
        username=str(credentials.get("username", "")),
        password=str(credentials.get("password", "")),
        allow_private_address=bool(getattr(source, "allow_private_address", False)),
    )
