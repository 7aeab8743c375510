"""The HTTPS APIs' certificate: the files the settings name, or one the hub CA issues for this hub."""

from __future__ import annotations

from collections.abc import Iterable

from sharehub import pki
from sharehub.errors import ConfigurationError
from sharehub.settings import Settings

#: Listening addresses that name no host a client would connect to.
_WILDCARDS = {"0.0.0.0", "::", ""}


def api_certificate(settings: Settings, hosts: Iterable[str] = ()) -> pki.ServerCertificate:
    """``SHAREHUB_API_TLS_CERT_FILE`` and ``..._KEY_FILE`` when both are set; otherwise ``home/tls/api.pem``
    and ``api.key``, issued by the hub CA (made first if the hub has none) for 127.0.0.1, localhost,
    ``api_host`` and ``hosts``, and issued anew when near their end or for other names."""
    cert, key = settings.api_tls_cert_file, settings.api_tls_key_file
    if cert is not None or key is not None:
        if cert is None or key is None:
            raise ConfigurationError(
                "set both SHAREHUB_API_TLS_CERT_FILE and SHAREHUB_API_TLS_KEY_FILE, or neither"
            )
        return pki.ServerCertificate(cert, key)
    names = [h for h in dict.fromkeys([settings.api_host, *hosts]) if h not in _WILDCARDS]
    ca = pki.HubCA.open(settings.tls_dir)
    return pki.server_certificate(ca, settings.tls_dir, "api", names)
