"""Which webhook URLs are refused, and which address an accepted one pins."""

from __future__ import annotations

import pytest

from services.webhooks.ssrf import Target, UnsafeURL, check_url, resolve_host
from tests.services.webhooks.fake_dns import fake_resolver

PUBLIC = "93.184.215.14"
RESOLVER = fake_resolver(
    {
        "public.test": [PUBLIC],
        "evil.test": ["127.0.0.1"],
        "mixed.test": [PUBLIC, "10.0.0.5"],
        "mixed-first.test": ["10.0.0.5", PUBLIC],
        "metadata.test": ["169.254.169.254"],
        "mapped.test": ["::ffff:127.0.0.1"],
        "v6.test": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", PUBLIC],
        "nat64.test": ["64:ff9b::5db8:d70e"],
        "nat64-metadata.test": ["64:ff9b::a9fe:a9fe"],
        "local.test": ["127.0.0.1", "::1"],
        "half-local.test": ["127.0.0.1", PUBLIC],
        "empty.test": [],
        "garbage.test": ["not-an-ip"],
        "xn--bcher-kva.test": [PUBLIC],
    }
)


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} should not have been resolved")


def refusal(url: str, **options: object) -> str:
    with pytest.raises(UnsafeURL) as caught:
        check_url(url, resolve=RESOLVER, **options)  # type: ignore[arg-type]
    return caught.value.code


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://127.0.0.2:8443/",
        "https://[::1]/",
        "https://10.0.0.1/",
        "https://192.168.1.1/",
        "https://172.16.0.1/",
        "https://100.64.0.1/",  # shared address space (carrier-grade NAT)
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/",
        "https://[fc00::1]/",
        "https://[fec0::1]/",
        "https://0.0.0.0/",
        "https://[::]/",
        "https://224.0.0.1/",
        "https://[ff0e::1]/",
        "https://240.0.0.1/",
        "https://255.255.255.255/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:169.254.169.254]/",
        "https://[::ffff:10.0.0.1]/",
        "https://[::127.0.0.1]/",  # IPv4-compatible
        "https://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
        "https://[2002:a9fe:a9fe::1]/",  # 6to4 around 169.254.169.254
        "https://[64:ff9b::7f00:1]/",  # NAT64 around 127.0.0.1
        "https://evil.test/",
        "https://mixed.test/",
        "https://mixed-first.test/",
        "https://metadata.test/",
        "https://mapped.test/",
        "https://nat64-metadata.test/",
        "https://half-local.test/",
    ],
)
def test_non_global_addresses_are_forbidden(url: str) -> None:
    assert refusal(url) == "forbidden_address"


@pytest.mark.parametrize(
    "url", ["http://example.com/", "http://93.184.215.14/", "ftp://public.test/", "//public.test/"]
)
def test_only_https(url: str) -> None:
    with pytest.raises(UnsafeURL) as caught:
        check_url(url, resolve=no_dns)  # refused before any lookup
    assert caught.value.code == "insecure_scheme"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@public.test/",
        "https://user@public.test/",
        "https://:pw@public.test/",
        "https://evil.test\\@public.test/",
        "https://public.test /",
        "https://public.test/\nHost: evil",
        "https:///hooks",
        "https:public.test",
        "https://public.test:0/",
        "https://public.test:99999/",
        "https://public.test:http/",
        "https://[::1%25eth0]/",
        "https://[not-v6]/",
        "https://127.1/",  # inet_aton's shorthands for 127.0.0.1
        "https://2130706433/",
        "https://0x7f.0.0.1/",
        "https://public.test.123/",
        "https://under%5Fscore.test/",
        "https://a..b.test/",
        "",
        "https://" + "a" * 2100 + ".test/",
    ],
)
def test_malformed_urls_are_invalid(url: str) -> None:
    assert refusal(url) == "invalid_url"


@pytest.mark.parametrize(
    "url", ["https://nowhere.test/", "https://empty.test/", "https://garbage.test/"]
)
def test_names_that_do_not_resolve(url: str) -> None:
    assert refusal(url) == "unresolvable_host"


def test_a_public_name_pins_its_address() -> None:
    target = check_url("https://Public.TEST/hooks/in?x=1&y=%20#frag", resolve=RESOLVER)
    assert target == Target(
        url="https://Public.TEST/hooks/in?x=1&y=%20#frag",
        scheme="https",
        host="public.test",
        port=443,
        path_and_query="/hooks/in?x=1&y=%20",
        address=PUBLIC,
    )
    assert target.authority == "public.test"
    assert RESOLVER.calls[-1] == ("public.test", 443)  # type: ignore[attr-defined]


def test_the_first_address_is_the_one_pinned() -> None:
    target = check_url("https://v6.test:8443", resolve=RESOLVER)
    assert target.address == "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
    assert (target.port, target.path_and_query, target.authority) == (8443, "/", "v6.test:8443")


def test_ip_literals_are_not_resolved() -> None:
    target = check_url(f"https://{PUBLIC}:8443/x", resolve=no_dns)
    assert (target.host, target.address, target.authority) == (PUBLIC, PUBLIC, f"{PUBLIC}:8443")
    v6 = check_url("https://[2606:2800:21F:cb07:6820:80da:af6b:8b2c]/", resolve=no_dns)
    assert v6.address == v6.host == "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
    assert v6.authority == "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]"


def test_nat64_of_a_public_address_is_allowed() -> None:
    assert check_url("https://nat64.test/", resolve=RESOLVER).address == "64:ff9b::5db8:d70e"


def test_international_names_are_resolved_as_punycode() -> None:
    target = check_url("https://bücher.test/ünïcode?q=ä", resolve=RESOLVER)
    assert (target.host, target.address) == ("xn--bcher-kva.test", PUBLIC)
    assert target.path_and_query == "/%C3%BCn%C3%AFcode?q=%C3%A4"


def test_the_default_resolver_uses_getaddrinfo() -> None:
    assert resolve_host("127.0.0.1", 80) == ["127.0.0.1"]
    with pytest.raises(UnsafeURL) as caught:
        check_url("https://127.0.0.1/")
    assert caught.value.code == "forbidden_address"


class TestAllowLoopbackHttp:
    """For local development and the tests: loopback yes, private networks still no."""

    def test_http_to_loopback_is_accepted(self) -> None:
        target = check_url("http://127.0.0.1:8123/hook", allow_loopback_http=True)
        assert (target.scheme, target.address, target.port) == ("http", "127.0.0.1", 8123)
        assert check_url("http://[::1]:8123/", allow_loopback_http=True).address == "::1"

    def test_names_that_are_only_loopback_too(self) -> None:
        target = check_url("http://local.test/", allow_loopback_http=True, resolve=RESOLVER)
        assert (target.address, target.port, target.authority) == ("127.0.0.1", 80, "local.test")

    def test_https_to_loopback_is_accepted(self) -> None:
        assert check_url("https://127.0.0.1:8443/", allow_loopback_http=True).port == 8443

    @pytest.mark.parametrize(
        "url",
        ["http://10.0.0.1/", "https://192.168.1.1/", "http://metadata.test/", "http://[fe80::1]/"],
    )
    def test_private_networks_are_still_forbidden(self, url: str) -> None:
        assert refusal(url, allow_loopback_http=True) == "forbidden_address"

    @pytest.mark.parametrize("url", ["http://public.test/", "http://half-local.test/"])
    def test_http_beyond_loopback_is_still_insecure(self, url: str) -> None:
        assert refusal(url, allow_loopback_http=True) == "insecure_scheme"
