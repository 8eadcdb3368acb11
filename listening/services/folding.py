"""Which posts repeat a mention instead of being one: reposts and copies of the same words.

A complaint that is reposted 300 times is one conversation to have, with a lot of reach, not
300 tickets. A repost folds under its original; a post whose words are exactly those of a
recent mention of the brand folds under it as a copy. Short texts never fold as copies: two
customers who both write "@brand refund?" are two customers.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from listening.clients.base import FetchedPost

# How many words a text needs before an exact copy of it counts as the same post.
COPY_MIN_WORDS = 6
_REPOST_PREFIX = re.compile(r"^RT @\w{1,15}:\s*")
_SPACE = re.compile(r"\s+")


def text_fingerprint(text: str) -> str:
    """The same for texts that differ only in case, spacing, Unicode form or an "RT @x:"."""
    text = _REPOST_PREFIX.sub("", text.strip())
    normal = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return hashlib.sha1(normal.encode(), usedforsecurity=False).hexdigest()


def folds_as_copy(post: FetchedPost) -> bool:
    """Whether `post` may fold under an earlier post with the same words."""
    if post.reposted_id is not None:
        return True
    return len(_REPOST_PREFIX.sub("", post.text).split()) >= COPY_MIN_WORDS
