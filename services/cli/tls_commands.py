"""``sharehub tls``: the hub CA from the command line.

At the hub: ``init`` makes the CA, ``server`` issues a server certificate (a broker or API elsewhere than this
machine), ``sign`` signs an agency's certificate signing request for its principal. At an agency: ``csr``
makes the key and the request; only the request goes to the hub, the key never leaves the agency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.cli.errors import reports_errors
from services.hub import Hub
from sharehub import pki
from sharehub.errors import InputError
from sharehub.keys import write_private
from sharehub.settings import Settings

app = typer.Typer(
    help="The hub's certificate authority: server and agency certificates.", no_args_is_help=True
)
err = Console(stderr=True, soft_wrap=True)


@app.command("init")
@reports_errors
def init() -> None:
    """Make the hub CA in home/tls (kept if it exists); print its certificate's file, what clients trust."""
    settings = Settings()
    existed = pki.HubCA.paths(settings.tls_dir)[0].exists()
    ca = pki.HubCA.open(settings.tls_dir)
    err.print(f"{'the hub CA is' if existed else 'made the hub CA'} {ca.cert.subject.rfc4514_string()}")
    print(settings.ca_file.resolve())


@app.command("server")
@reports_errors
def server(
    name: Annotated[str, typer.Argument(help="File name of the certificate: DIR/NAME.pem and DIR/NAME.key")],
    dns: Annotated[
        list[str] | None, typer.Option("--dns", help="A name or address the server is reached by")
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write them (default home/tls)")
    ] = None,
) -> None:
    """Issue a server certificate (127.0.0.1, localhost and each --dns); kept while still good."""
    settings = Settings()
    ca = pki.HubCA.open(settings.tls_dir)
    issued = pki.server_certificate(ca, directory or settings.tls_dir, name, dns or [])
    print(issued.cert_file)
    print(issued.key_file)


@app.command("sign")
@reports_errors
def sign(
    agency: Annotated[str, typer.Option("--agency", help="The agency (registered in governance)")],
    csr: Annotated[Path, typer.Option("--csr", help="Its certificate signing request (PEM)")],
    days: Annotated[float, typer.Option(min=1, help="Validity in days")] = pki.CLIENT_DAYS,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the certificate here (default stdout)")
    ] = None,
) -> None:
    """Sign an agency's CSR: a client certificate whose subject is CN=<prefix>.<agency>, the broker principal
    the ACLs name. Refused when the CSR's signature does not verify or it asks for another name."""
    with Hub() as hub:
        if agency not in hub.governance.agencies_:
            raise InputError(f"no agency {agency!r} is registered in governance")
        principal = hub.principal(agency)
        cert = pki.HubCA.load(hub.settings.tls_dir).sign_csr(csr.read_bytes(), principal, days=days)
    if out is None:
        print(cert.decode(), end="")
    else:
        out.write_bytes(cert)
    err.print(f"signed a certificate for principal {principal}, valid {days:g} days")


@app.command("csr")
@reports_errors
def csr(
    principal: Annotated[
        str, typer.Option("--principal", help="<topic prefix>.<agency>, as the hub names it")
    ],
    key_out: Annotated[Path, typer.Option("--key-out", help="Where the new private key goes (owner-only)")],
    csr_out: Annotated[Path, typer.Option("--csr-out", help="Where the request goes (send it to the hub)")],
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Encrypt the key under the passphrase in this file")
    ] = None,
) -> None:
    """At the agency: a new key and a certificate signing request for it."""
    passphrase = passphrase_file.read_bytes().strip() if passphrase_file else None
    key_pem, csr_pem = pki.make_csr(principal, passphrase)
    write_private(key_out, key_pem)
    csr_out.write_bytes(csr_pem)
    err.print(f"key in {key_out} (keep it here); send {csr_out} to the hub")
