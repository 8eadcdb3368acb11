from __future__ import annotations

from urllib.parse import urlencode

from django import template

register = template.Library()


@register.filter
def urlencode_params(params: dict[str, str]) -> str:
    """A saved view's filters as a query string."""
    return urlencode(params)
