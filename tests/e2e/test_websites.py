"""Personal Web Sites (issue 9; guide.txt:2953-2961, 9524-9661): files put with the WEBFILE CLI
commands (the real `gatehouse` client) and over HTTP PUT, read back with curl from
`http://host:8100/~account/`; the private folder needs the owner's or an administrator's
credentials; traversal in every spelling names nothing; the limits hold."""

import base64
import subprocess

import pytest

from cli_helpers import cli


def curl(*args):
    """Runs curl with --path-as-is (so `..` reaches the server); returns (status, body, headers)."""
    cmd = ["curl", "-s", "-S", "--path-as-is", "-D", "/dev/stderr", "-o", "-", "-w", "\n%{http_code}",
           "--max-time", "20"]
    p = subprocess.run(cmd + list(args), capture_output=True)
    assert p.returncode == 0, f"curl {args} exited {p.returncode}: {p.stderr[-2000:]!r}"
    body, _, code = p.stdout.decode("utf-8", "replace").rpartition("\n")
    return int(code), body, p.stderr.decode("utf-8", "replace").lower()


def url(server, path):
    return f"http://127.0.0.1:{server.port(8100)}{path}"


def b64(data):
    return base64.b64encode(data).decode()


@pytest.fixture
def site(server, gatehouse_bin):
    for name, pw, limits in [("web", "pw-web", "MaxWebSize=100K;MaxWebFiles=20;"),
                             ("other", "pw-other", "MaxWebSize=100K;")]:
        cli(gatehouse_bin, server, "CreateAccount", f"{name}@example.test",
            f"{{Password={pw};PasswordEncryption=clear;{limits}}}", check=True)
    return server


def put(gatehouse_bin, server, name, data, user="web", password="pw-web"):
    return cli(gatehouse_bin, server, "PUTWEBFILE", "*", "FILE", name, "DATA", b64(data),
               user=user, password=password)


def test_cli_commands_manage_the_site(site, gatehouse_bin):
    server = site
    assert put(gatehouse_bin, server, "default.html", b"<h1>Home</h1>").returncode == 0
    assert put(gatehouse_bin, server, "docs/report.txt", b"488 bytes or so").returncode == 0
    got = cli(gatehouse_bin, server, "GETWEBFILE", "*", "FILE", "docs/report.txt",
              user="web", password="pw-web", json=True)
    assert base64.b64decode(got[0]) == b"488 bytes or so" and len(got[1]) == 14
    top = cli(gatehouse_bin, server, "LISTWEBFILES", "web@example.test", json=True)
    assert top["docs"] == [] and top["default.html"]["Size"] == "13"
    assert cli(gatehouse_bin, server, "GETWEBFILESINFO", "web@example.test", json=True) == ["28", "3"]
    assert cli(gatehouse_bin, server, "RENAMEWEBFILE", "web", "FILE", "docs/report.txt", "INTO",
               "report.txt").returncode == 0
    assert cli(gatehouse_bin, server, "DELETEWEBFILE", "web", "FILE", "docs").returncode == 0
    assert sorted(cli(gatehouse_bin, server, "LISTWEBFILES", "web", json=True)) == [
        "default.html", "report.txt"]
    # Another user may not touch the site; traversal and the reserved name are refused.
    p = cli(gatehouse_bin, server, "PUTWEBFILE", "web", "FILE", "x", "DATA", b64(b"x"),
            user="other", password="pw-other")
    assert p.returncode != 0 and "Not enough access rights" in p.stderr
    for bad in ["../escape.txt", "a/../../escape.txt", ".hidden", "index.html"]:
        p = put(gatehouse_bin, server, bad, b"x")
        assert p.returncode != 0 and "illegal web file name" in p.stderr, (bad, p.stderr)
    assert not (server.base / "Accounts" / "escape.txt").exists()
    assert not (server.base / "Accounts" / "web.macnt" / "escape.txt").exists()


def test_files_are_served_and_private_needs_the_owner(site, gatehouse_bin):
    server = site
    put(gatehouse_bin, server, "default.html", b"<h1>Home of web</h1>")
    put(gatehouse_bin, server, "pics/logo.png", b"\x89PNG\r\n\x1a\nfake")
    put(gatehouse_bin, server, "private/secret.txt", b"the secret")

    code, body, headers = curl(url(server, "/~web/"))
    assert code == 200 and "Home of web" in body
    assert "content-type: text/html" in headers
    assert "content-security-policy: sandbox" in headers and "nosniff" in headers
    code, _, headers = curl(url(server, "/~web"))
    assert code == 301 and "location: /~web/" in headers
    code, _, headers = curl(url(server, "/~web/pics"))
    assert code == 301 and "location: /~web/pics/" in headers
    code, _, headers = curl(url(server, "/~web/pics/logo.png"))
    assert code == 200 and "content-type: image/png" in headers
    assert curl(url(server, "/~web/missing.html"))[0] == 404
    assert curl(url(server, "/~nobody/"))[0] == 404

    code, body, headers = curl(url(server, "/~web/private/secret.txt"))
    assert code == 401 and 'www-authenticate: basic realm="~web"' in headers
    assert "the secret" not in body
    assert curl("-u", "other:pw-other", url(server, "/~web/private/secret.txt"))[0] == 401
    assert curl("-u", "web:wrong", url(server, "/~web/private/secret.txt"))[0] == 401
    code, body, _ = curl("-u", "web:pw-web", url(server, "/~web/private/secret.txt"))
    assert code == 200 and body == "the secret"
    code, body, _ = curl("-u", f"postmaster:{server.password}", url(server, "/~web/private/secret.txt"))
    assert code == 200 and body == "the secret"
    assert curl(url(server, "/~web/Private/secret.txt"))[0] == 401


def test_traversal_names_nothing(site, gatehouse_bin):
    server = site
    put(gatehouse_bin, server, "default.html", b"home")
    (server.base / "outside.txt").write_text("outside")
    account_dir = "/~web"
    for path in ["/../outside.txt", "/../../../outside.txt", "/%2e%2e/%2e%2e/%2e%2e/outside.txt",
                 "/%2E%2E%2F%2E%2E%2F%2E%2E%2Foutside.txt", "/..%2f..%2f..%2foutside.txt",
                 "/.%2e/.%2e/.%2e/outside.txt", "/%252e%252e/outside.txt", "/pics/../../../outside.txt",
                 "/..\\..\\..\\outside.txt", "/%00default.html", "/.default.html.gh-tmp"]:
        code, body, _ = curl(url(server, account_dir + path))
        assert code in (400, 404) and "outside" not in body, (path, code, body)
    # `/~web/../` is the server's `/` after normalisation by nobody: it must not be the site root
    # nor another file.
    code, body, _ = curl(url(server, "/~web/../~other/"))
    assert code in (400, 404) and "home" not in body
    # A symbolic link planted in the site is not followed.
    web = server.base / "Accounts" / "web.macnt" / "account.web"
    (web / "link").symlink_to(server.base)
    code, body, _ = curl(url(server, "/~web/link/outside.txt"))
    assert code == 404 and "outside" not in body


def test_http_put_delete_and_limits(site, gatehouse_bin, tmp_path):
    server = site
    code, _, _ = curl("-T", "-", url(server, "/~web/up.txt"))
    assert code == 401
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "web:pw-web",
                        "-T", "-", url(server, "/~web/up.txt")], input=b"uploaded", capture_output=True)
    assert p.stdout == b"201"
    assert curl(url(server, "/~web/up.txt"))[1] == "uploaded"
    # Over the storage limit: a declared length is refused before the body is read (sent from a
    # file: from a pipe curl streams chunks, and the refusal may arrive while it still writes).
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 200_000)
    assert curl("-u", "web:pw-web", "-T", str(big), url(server, "/~web/big.bin"))[0] == 413
    assert curl("-u", "web:pw-web", "-X", "DELETE", url(server, "/~web/up.txt"))[0] == 204
    assert curl(url(server, "/~web/up.txt"))[0] == 404
    # Web Storage 0 disables the site (guide.txt:8776-8778).
    cli(gatehouse_bin, server, "UpdateAccountSettings", "web", "{MaxWebSize=0;}", check=True)
    put(gatehouse_bin, server, "x.txt", b"x")
    assert curl(url(server, "/~web/"))[0] == 404


def test_management_page_needs_login_and_lists(site, gatehouse_bin, tmp_path):
    server = site
    upload = tmp_path / "upload.txt"
    upload.write_text("uploaded through the form")
    put(gatehouse_bin, server, "default.html", b"home")
    put(gatehouse_bin, server, "sub/a.txt", b"aaa")
    assert curl(url(server, "/~web/index.html"))[0] == 401
    assert curl("-u", "other:pw-other", url(server, "/~web/index.html"))[0] == 401
    code, body, headers = curl("-u", "web:pw-web", url(server, "/~web/index.html"))
    assert code == 200 and "default.html" in body and "Upload File" in body
    assert "content-security-policy: default-src 'none'" in headers
    code, body, _ = curl("-u", "web:pw-web", url(server, "/~web/index.html?SubDir=sub"))
    assert code == 200 and "a.txt" in body
    # Upload through the form, with and without the CSRF token.
    token = body.split('name="csrf" value="')[1].split('"')[0]
    code, _, _ = curl("-u", "web:pw-web", "-F", "Op=Upload", "-F", "SubDir=sub",
                      "-F", f"File=@{upload};filename=host.txt", url(server, "/~web/index.html"))
    assert code == 403
    code, _, headers = curl("-u", "web:pw-web", "-F", f"csrf={token}", "-F", "Op=Upload",
                            "-F", "SubDir=sub", "-F", f"File=@{upload};filename=host.txt",
                            url(server, "/~web/index.html"))
    assert code == 303 and "message=done" in headers
    listed = cli(gatehouse_bin, server, "LISTWEBFILES", "web", "PATH", "sub", json=True)
    assert "host.txt" in listed


def test_move_banner_host_domain_and_service(site, gatehouse_bin):
    server = site
    put(gatehouse_bin, server, "default.html", b"<p>home</p>")
    put(gatehouse_bin, server, "a.txt", b"aaa")
    # MOVE (guide.txt:9649-9655; RFC 4918 Destination), only for the owner, only inside the site.
    dest = f"Destination: http://127.0.0.1:{server.port(8100)}/~web/b.txt"
    assert curl("-X", "MOVE", "-H", dest, url(server, "/~web/a.txt"))[0] == 401
    assert curl("-u", "web:pw-web", "-X", "MOVE", "-H", "Destination: /~other/x.txt",
                url(server, "/~web/a.txt"))[0] == 400
    assert curl("-u", "web:pw-web", "-X", "MOVE", "-H", dest, url(server, "/~web/a.txt"))[0] == 201
    assert curl(url(server, "/~web/b.txt"))[1] == "aaa"
    assert curl(url(server, "/~web/a.txt"))[0] == 404

    # The domain's Web Banner Text opens HTML files of accounts with Add Web Banner.
    cli(gatehouse_bin, server, "UpdateDomainSettings", "example.test",
        '{WebBanner="<div id=banner>Hosted here</div>";}', check=True)
    assert curl(url(server, "/~web/"))[1] == "<p>home</p>"
    cli(gatehouse_bin, server, "UpdateAccountSettings", "web", "{AddWebBanner=YES;}", check=True)
    assert curl(url(server, "/~web/"))[1] == "<div id=banner>Hosted here</div><p>home</p>"
    assert curl(url(server, "/~web/b.txt"))[1] == "aaa"

    # An account of another domain: by the Host name, or by name@domain.
    cli(gatehouse_bin, server, "CreateDomain", "client.test", check=True)
    cli(gatehouse_bin, server, "CreateAccount", "jsmith@client.test",
        "{Password=pw-j;PasswordEncryption=clear;MaxWebSize=10K;}", check=True)
    cli(gatehouse_bin, server, "PUTWEBFILE", "jsmith@client.test", "FILE", "default.html", "DATA",
        b64(b"jsmith of client.test"), check=True)
    assert curl("-H", "Host: client.test:8100", url(server, "/~jsmith/"))[1] == "jsmith of client.test"
    assert curl(url(server, "/~jsmith@client.test/"))[1] == "jsmith of client.test"
    assert curl(url(server, "/~jsmith/"))[0] == 404

    # The WebSite service off for the account hides the site (guide.txt:9535-9538).
    cli(gatehouse_bin, server, "UpdateAccountSettings", "web", "{AccessModes=(Mail,POP,IMAP);}",
        check=True)
    assert curl(url(server, "/~web/"))[0] == 404
