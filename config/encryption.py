"""Credentials encrypted at rest, with django-fernet-encrypted-fields.

The library encrypts each value with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`)
under keys it derives with PBKDF2 from SECRET_KEY (and SECRET_KEY_FALLBACKS) and its `SALT_KEY`
list, which settings fill from FIELD_ENCRYPTION_KEYS. Values are written with the first
combination (SECRET_KEY, first key) and read with any: rotating either input means putting
the new one first, keeping the old one as a fallback, and running `manage.py
rotate_credentials`, which rewrites every stored value under the new first key.

The fields here are the library's, with four of its habits changed for Earshot:
- the keys are derived once per process and per configuration, not once per field (each
  derivation is 100,000 PBKDF2 rounds), and follow settings when tests change them;
- an empty value stays an empty string (the library stores NULL, which a NOT NULL column
  refuses): "not set" is no secret;
- a value no configured key opens is logged, naming the column, never the value, and passed
  on as stored (the platform then refuses it, which Source health shows);
- forms are validated without marking the field, which every thread shares, as "already
  decrypted" (the library's way, which can make a concurrent load skip decryption);
- serializers (`manage.py dumpdata`, fixtures) get the ciphertext, not the plaintext the
  library hands them, and loading reads it back (`loaddata` decrypts, saving encrypts again):
  a dump of the database holds no secret, and it loads only where the same keys are set.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from encrypted_fields import fields as library

logger = logging.getLogger(__name__)

# Every Fernet token starts with its version byte 0x80 and a timestamp: base64 "gAAAAA".
TOKEN_PREFIX = "gAAAAA"
MASK = "••••"
# Secrets shorter than this show no characters at all in their mask.
MASK_MIN_LENGTH_FOR_TAIL = 12


def _key_material() -> tuple[tuple[str, ...], tuple[str, ...]]:
    salts = (
        settings.SALT_KEY if isinstance(settings.SALT_KEY, list | tuple) else [settings.SALT_KEY]
    )
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return tuple(secrets), tuple(salts)


@lru_cache(maxsize=4)
def _fernet_for(material: tuple[tuple[str, ...], tuple[str, ...]]) -> MultiFernet:
    # The library's own derivation (it reads the same settings `material` was read from), so
    # what Earshot writes stays readable by the library's plain fields and the other way round.
    keys = library.EncryptedFieldMixin.keys.real_func(None)
    return MultiFernet([Fernet(key) for key in keys])


def credential_fernet() -> MultiFernet:
    """Encrypts with the first configured key, decrypts with any, rotates to the first."""
    return _fernet_for(_key_material())


def is_token(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def secret_mask(value: str) -> str:
    """What a person may see of a stored secret: "••••" and, for a long one, its last 4."""
    if not value:
        return ""
    return MASK + (value[-4:] if len(value) >= MASK_MIN_LENGTH_FOR_TAIL else "")


def _log_unreadable(field: Any) -> None:
    logger.error(
        "A stored %s.%s could not be decrypted with any configured key: is a key missing from "
        "FIELD_ENCRYPTION_KEYS, or SECRET_KEY changed without SECRET_KEY_FALLBACKS? It is "
        "used as stored, so the platform will refuse it.",
        field.model.__name__ if hasattr(field, "model") else "?",
        field.name,
    )


class _EarshotKeys:
    @property
    def f(self) -> MultiFernet:
        return credential_fernet()

    def clean(self, value: Any, model_instance: Any) -> Any:
        # Form and model values are plaintext already: validate them as they are.
        self.validate(value, model_instance)
        self.run_validators(value)
        return value


class EncryptedCharField(_EarshotKeys, library.EncryptedCharField):
    """A CharField stored encrypted in a text column; max_length bounds the plaintext."""

    def get_prep_value(self, value: Any) -> Any:
        if value == "":
            return ""
        return super().get_prep_value(value)

    def value_to_string(self, obj: Any) -> Any:
        # What serializers write: a fresh token of the value (Fernet tokens differ each time,
        # all open the same), never the plaintext. to_python reads it back on load.
        return self.get_prep_value(self.value_from_object(obj))

    def to_python(self, value: Any) -> Any:
        if not is_token(value):
            return value
        try:
            return self.f.decrypt(value.encode()).decode()
        except InvalidToken:
            _log_unreadable(self)
            return value


class EncryptedJSONField(_EarshotKeys, library.EncryptedJSONField):
    """A JSONField whose every leaf value is encrypted (as a string); keys stay readable."""

    def _encrypt_values(self, value: Any) -> Any:
        if value is None:  # the library would store the string "None"
            return None
        return super()._encrypt_values(value)

    def value_to_string(self, obj: Any) -> Any:
        # Serializers write JSON as it is (a dict, not text): the same dict, leaves encrypted.
        return self._encrypt_values(self.value_from_object(obj))

    def to_python(self, value: Any) -> Any:
        # A deserialized fixture gives the dict itself, not its JSON text as the database
        # does: open its leaves too (the library only opens text).
        if isinstance(value, dict | list):
            return self._decrypt_values(value)
        return super().to_python(value)

    def _decrypt_values(self, value: Any) -> Any:
        if value is None or isinstance(value, dict | list):
            return super()._decrypt_values(value)  # which comes back here for each item
        if not is_token(value):
            return value
        try:
            return super()._decrypt_values(value)
        except InvalidToken:
            _log_unreadable(self)
            return value
