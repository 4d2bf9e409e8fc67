"""Redact the secrets a URL can carry (userinfo, presigned-URL signatures and tokens).

Every URL that loaders record (the ``source`` attr of an assembly, an NWB summary) or print (an
error message) goes through :func:`redact_url` first, so a presigned S3/GCS/Azure URL or
``http://user:password@host/…`` never ends up in a result file, a log or a terminal.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_text", "redact_url"]

#: What replaces a secret query value.
REDACTED = "REDACTED"

# A query parameter is secret when one of the words of its name (split at non-letters and
# camelCase humps, lower-cased) is one of these. That covers AWS SigV2/SigV4
# (Signature, AWSAccessKeyId, X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token), Google
# (X-Goog-Signature, X-Goog-Credential, GoogleAccessId is kept), Azure SAS (sig), CloudFront
# (Signature, Policy, Key-Pair-Id), OAuth (access_token, oauth_signature) and API keys, while
# the non-secret parts of a presigned URL (X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders,
# Azure se/sp/sv) and ordinary parameters are kept.
_SECRET_WORDS = frozenset({
    "signature", "sig", "token", "key", "apikey", "secret", "password", "passwd", "pwd",
    "credential", "credentials", "auth", "authorization", "policy", "jwt", "sas",
})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _is_secret(name: str) -> bool:
    words = {w.lower() for w in _WORDS.findall(unquote(name))}
    return not words.isdisjoint(_SECRET_WORDS)


def _redact_pairs(text: str) -> str:
    """``a=1&X-Amz-Signature=abc`` -> ``a=1&X-Amz-Signature=REDACTED`` (raw text kept otherwise)."""
    parts = []
    for pair in text.split("&"):
        name, eq, _ = pair.partition("=")
        parts.append(f"{name}={REDACTED}" if eq and _is_secret(name) else pair)
    return "&".join(parts)


def redact_url(url) -> str:
    """``url`` without its credentials: userinfo removed, secret query values replaced.

    Parameters
    ----------
    url : str or path-like
        Any string; only ``scheme://…`` URLs are changed, so local paths pass through.

    Returns
    -------
    str
        The URL with ``user:password@`` removed and the value of every query (or fragment)
        parameter whose name looks secret (signature, token, key, credential, password, auth,
        policy, ``sig``, ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``X-Goog-Signature``, …)
        replaced by ``REDACTED``; other parameters are kept as written.

    Examples
    --------
    >>> redact_url("https://u:p@host/f.nwb?X-Amz-Signature=abc&X-Amz-Expires=60")
    'https://host/f.nwb?X-Amz-Signature=REDACTED&X-Amz-Expires=60'
    """
    text = str(url)
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:  # an unparseable URL: keep only what cannot hold a secret
        return text.split("://", 1)[0] + "://" + REDACTED
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, _redact_pairs(parts.query),
                       _redact_pairs(parts.fragment)))


def redact_text(text: str, url) -> str:
    """``text`` (an exception message, say) with every copy of ``url``, and of its
    path-and-query as HTTP libraries quote it, replaced by the redacted URL."""
    url = str(url)
    safe = redact_url(url)
    if safe == url:
        return text
    parts = urlsplit(url)
    text = text.replace(url, safe)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    safe_parts = urlsplit(safe)
    if parts.query:
        text = text.replace(tail, safe_parts.path + f"?{safe_parts.query}")
    if "@" in parts.netloc:
        text = text.replace(parts.netloc, safe_parts.netloc)
    return text
