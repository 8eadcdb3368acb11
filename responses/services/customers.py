"""Tags the team puts on customers: VIP, advocate, at risk.

Both writes are idempotent: adding a tag the customer has, or removing one they do not, is
a no-op, so a double click or a retried request changes nothing. The unique constraint on
(author, tag) settles two agents adding the same tag at once.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from listening.models import Author, AuthorTag, AuthorTagKind


def author_tag_add(*, author: Author, tag: str, by: AbstractBaseUser) -> bool:
    """Tag `author` with `tag`; True if this call added it, False if it was already there.

    An existing tag keeps who added it first and when.
    """
    if tag not in AuthorTagKind.values:
        raise ValueError(f"unknown author tag {tag!r}")
    _, created = AuthorTag.objects.get_or_create(author=author, tag=tag, defaults={"added_by": by})
    return created


def author_tag_remove(*, author: Author, tag: str) -> bool:
    """Take `tag` off `author`; True if this call removed it, False if it was not there."""
    deleted, _ = AuthorTag.objects.filter(author=author, tag=tag).delete()
    return deleted > 0
