"""Credentials at rest: rewriting every stored secret under the current first key.

The encrypted columns are Brand's five X keys and Source.credentials (config/encryption.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet
from django.db import connection, transaction

from config.encryption import EncryptedCharField, EncryptedJSONField, credential_fernet, is_token

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RotationOutcome:
    # Values that were encrypted and are now encrypted under the first key.
    rotated: int = 0
    # Values found in plaintext (written before encryption, or by raw SQL), now encrypted.
    encrypted: int = 0
    # "<model> <pk> <field>" of values no configured key opens: left exactly as they were.
    unreadable: list[str] = field(default_factory=list)


class _Rewriter:
    def __init__(self, fernet: MultiFernet, outcome: RotationOutcome) -> None:
        self.fernet = fernet
        self.outcome = outcome

    def text(self, value: Any, where: str) -> Any:
        if value is None or value == "":
            return value
        if not isinstance(value, str):
            value = str(value)  # as django-fernet-encrypted-fields stores a JSON number
        if not is_token(value):
            self.outcome.encrypted += 1
            return self.fernet.encrypt(value.encode()).decode()
        try:
            rotated = self.fernet.rotate(value.encode()).decode()
        except InvalidToken:
            self.outcome.unreadable.append(where)
            return value
        self.outcome.rotated += 1
        return rotated

    def json(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {key: self.json(item, f"{where}[{key!r}]") for key, item in value.items()}
        if isinstance(value, list):
            return [self.json(item, f"{where}[{n}]") for n, item in enumerate(value)]
        return self.text(value, where)


def _encrypted_columns(model: Any) -> list[tuple[str, str, bool]]:
    """(field name, column, is JSON) of each encrypted field of `model`."""
    return [
        (f.name, f.column, isinstance(f, EncryptedJSONField))
        for f in model._meta.concrete_fields
        if isinstance(f, EncryptedCharField | EncryptedJSONField)
    ]


def credentials_rotate(*, models: list[Any] | None = None) -> RotationOutcome:
    """Rewrite every stored credential under the first configured key, in one transaction.

    Values are read as stored (not through the model), so each is opened with whichever
    configured key it was written with and written again with the first one; plaintext ones
    are encrypted. A value no configured key opens is left exactly as it was and named in the
    outcome. No model is saved (no signal, no `updated_at`). Safe to run twice: the second run
    rotates again, which changes the tokens but not what they hold.

    `models` defaults to Brand and Source; the migration that introduced encryption passes its
    historical models.
    """
    if models is None:
        from listening.models import Brand, Source

        models = [Brand, Source]
    outcome = RotationOutcome()
    rewriter = _Rewriter(credential_fernet(), outcome)
    quote = connection.ops.quote_name
    with transaction.atomic():
        for model in models:
            columns = _encrypted_columns(model)
            if not columns:
                continue
            table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
            selected = ", ".join(
                f"{quote(column)}::text" if is_json else quote(column)
                for _, column, is_json in columns
            )
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {pk}, {selected} FROM {table} ORDER BY {pk} FOR UPDATE")
                rows = cursor.fetchall()
                for pk_value, *stored in rows:
                    updates = []
                    for (name, column, is_json), value in zip(columns, stored, strict=True):
                        where = f"{model._meta.label} {pk_value} {name}"
                        if is_json:
                            if value is None:
                                continue
                            new = json.dumps(rewriter.json(json.loads(value), where))
                            updates.append((f"{quote(column)} = %s::jsonb", new))
                        else:
                            updates.append((f"{quote(column)} = %s", rewriter.text(value, where)))
                    if updates:
                        assignments = ", ".join(sql for sql, _ in updates)
                        cursor.execute(
                            f"UPDATE {table} SET {assignments} WHERE {pk} = %s",
                            [*(value for _, value in updates), pk_value],
                        )
    for where in outcome.unreadable:
        logger.error("Credential %s opens with no configured key: left as it was", where)
    logger.info(
        "Credentials rewritten under the first key: %d rotated, %d encrypted from plaintext, "
        "%d unreadable",
        outcome.rotated,
        outcome.encrypted,
        len(outcome.unreadable),
    )
    return outcome
