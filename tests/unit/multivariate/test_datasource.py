"""The dataSource policy: blob URLs of the configured account only; nothing else is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import InputError
from shared.multivariate.datasource import (
    BlobSource,
    DataSourcePolicy,
    LocalSource,
    SasSource,
    shown,
    without_sas,
)

AZURITE = DataSourcePolicy("http://127.0.0.1:10000/devstoreaccount1/")
CLOUD = DataSourcePolicy("https://acct.blob.core.windows.net/")


@pytest.mark.parametrize(
    ("policy", "url", "container", "name"),
    [
        (AZURITE, "http://127.0.0.1:10000/devstoreaccount1/data/energy.zip", "data", "energy.zip"),
        (AZURITE, "http://127.0.0.1:10000/devstoreaccount1/data/a/b%20c.csv", "data", "a/b c.csv"),
        (AZURITE, "http://127.0.0.1:10000/devstoreaccount1/data/folder/", "data", "folder/"),
        (CLOUD, "https://ACCT.blob.core.windows.net:443/mv-data/x.zip", "mv-data", "x.zip"),
    ],
)  # fmt: skip
def test_blob_urls_of_the_account_are_accepted(
    policy: DataSourcePolicy, url: str, container: str, name: str
) -> None:
    source = policy.resolve(url)
    assert source == BlobSource(container, name)


@pytest.mark.parametrize(
    ("policy", "url", "why"),
    [
        (CLOUD, "https://other.blob.core.windows.net/data/x.zip", "not the configured"),
        (CLOUD, "https://acct.blob.core.windows.net.evil.com/data/x.zip", "not the configured"),
        (CLOUD, "https://acct.blob.core.windows.net@evil.com/data/x.zip", "user names"),
        (CLOUD, "https://user:pw@acct.blob.core.windows.net/data/x.zip", "user names"),
        (CLOUD, "http://acct.blob.core.windows.net:443/data/x.zip", "https"),
        (CLOUD, "https://acct.blob.core.windows.net:444/data/x.zip", "not the configured"),
        (CLOUD, "http://169.254.169.254/metadata/x.zip", "private address"),
        (CLOUD, "http://127.0.0.1:10000/devstoreaccount1/data/x.zip", "private address"),
        (CLOUD, "http://[fd00::1]/data/x.zip", "private address"),
        (CLOUD, "http://localhost/data/x.zip", "private address"),
        (AZURITE, "http://127.0.0.1:10001/devstoreaccount1/data/x.zip", "private address"),
        (AZURITE, "http://127.0.0.1:10000/otheraccount/data/x.zip", "not in the configured"),
        (AZURITE, "http://127.0.0.1:10000/devstoreaccount1/data/../secret/x.zip", "'..'"),
        (AZURITE, "http://127.0.0.1:10000/devstoreaccount1/data/%2e%2e/x.zip", "'..'"),
        (AZURITE, "http://127.0.0.1:10000/devstoreaccount1/Bad_Container/x.zip", "container"),
        (AZURITE, "http://127.0.0.1:10000/devstoreaccount1/data", "no blob"),
        (AZURITE, "http://127.0.0.1:10000/devstoreaccount1/data/", "no blob"),
        (CLOUD, "ftp://acct.blob.core.windows.net/data/x.zip", "scheme"),
        (CLOUD, "gopher://127.0.0.1:6379/_INFO", "scheme"),
        (CLOUD, "file:///etc/passwd", "local paths"),
        (CLOUD, "/etc/passwd", "local paths"),
        (CLOUD, "C:\\data\\x.zip", "local paths"),
        (CLOUD, "energy.zip", "scheme"),
        (CLOUD, "https://acct.blob.core.windows.net/data/x.zip\r\nHost: evil", "control"),
        (CLOUD, "https://" + "a" * 5000, "longer than"),
        (CLOUD, "http://[::1", "not a valid URL"),
    ],
)  # fmt: skip
def test_everything_else_is_refused_with_a_reason(
    policy: DataSourcePolicy, url: str, why: str
) -> None:
    with pytest.raises(InputError) as caught:
        policy.resolve(url)
    assert caught.value.code == "InvalidDataSource"
    assert why in caught.value.message
    assert policy.endpoint in caught.value.message  # says what is accepted


@pytest.mark.parametrize("value", [None, 42, "", "   ", ["http://x"], {"url": "x"}])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InputError) as caught:
        AZURITE.resolve(value)
    assert caught.value.code == "InvalidDataSource"


def test_local_paths_only_when_allowed(tmp_path: Path) -> None:
    dataset = tmp_path / "energy.zip"
    dataset.write_bytes(b"PK")
    allowing = DataSourcePolicy("http://127.0.0.1:10000/devstoreaccount1/", allow_local_paths=True)
    assert allowing.resolve(str(dataset)) == LocalSource(dataset.resolve())
    assert allowing.resolve(dataset.as_uri()) == LocalSource(dataset.resolve())
    for refused in (str(dataset), dataset.as_uri()):
        with pytest.raises(InputError, match="API_ALLOW_LOCAL_PATHS"):
            AZURITE.resolve(refused)
    with pytest.raises(InputError, match="does not exist"):
        allowing.resolve(str(tmp_path / "missing.zip"))
    with pytest.raises(InputError, match="absolute"):
        allowing.resolve("./energy.zip")
    with pytest.raises(InputError, match="'..'"):
        allowing.resolve(f"{tmp_path}/../{tmp_path.name}/energy.zip")
    with pytest.raises(InputError, match="other hosts"):
        allowing.resolve("file://server/share/energy.zip")
    # Blob URLs of the account are still accepted when local paths are allowed.
    assert allowing.resolve("http://127.0.0.1:10000/devstoreaccount1/data/x.zip") == BlobSource(
        "data", "x.zip"
    )


# ------------------------------------------------------------------ the SAS and container rules

TRAINING = DataSourcePolicy("https://acct.blob.core.windows.net/", training_container="mv-training")
SAS = "sv=2022-11-02&sr=b&sp=r&se=2030-01-01T00%3A00%3A00Z&sig=c2VjcmV0c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "url",
    [
        f"https://acct.blob.core.windows.net/mv-data/energy.zip?{SAS}",  # another container
        f"https://acct.blob.core.windows.net/mv-training/energy.zip?{SAS}",
        f"https://otheracct.blob.core.windows.net/data/energy.zip?{SAS}",  # another account
    ],
)
def test_a_sas_url_is_read_with_its_sas(url: str) -> None:
    source = TRAINING.resolve(url)
    assert isinstance(source, SasSource)
    assert source.url == url  # the token travels only to the read
    assert "sig=" not in source.public_url and "?" not in source.public_url


def test_without_a_sas_only_the_training_container_is_read() -> None:
    assert TRAINING.resolve(
        "https://acct.blob.core.windows.net/mv-training/site/energy.zip"
    ) == BlobSource("mv-training", "site/energy.zip")
    for container in ("azure-webjobs-secrets", "mv-models", "mv-data", "raw-telemetry"):
        with pytest.raises(InputError) as caught:
            TRAINING.resolve(f"https://acct.blob.core.windows.net/{container}/keys.csv")
        assert caught.value.code == "InvalidDataSource"
        assert "only the training container mv-training" in caught.value.message
    # A query without a signature is not a SAS: the container rule applies.
    with pytest.raises(InputError):
        TRAINING.resolve("https://acct.blob.core.windows.net/mv-data/x.zip?sv=2022&sp=r")


@pytest.mark.parametrize(
    "url",
    [
        f"http://169.254.169.254/metadata/x.zip?{SAS}",
        f"http://10.0.0.4/devstoreaccount1/data/x.zip?{SAS}",
        f"https://evil.example.com/data/x.zip?{SAS}",
        f"http://otheracct.blob.core.windows.net/data/x.zip?{SAS}",  # SAS over plain http
        f"https://otheracct.blob.core.windows.net:8443/data/x.zip?{SAS}",
        f"https://acct.blob.core.windows.net.evil.com/data/x.zip?{SAS}",
        f"https://otheracct.blob.core.windows.net/data/folder/?{SAS}",
        f"file:///etc/passwd?{SAS}",
    ],
)
def test_a_sas_does_not_open_other_hosts(url: str) -> None:
    with pytest.raises(InputError) as caught:
        TRAINING.resolve(url)
    assert caught.value.code == "InvalidDataSource"
    assert "sig=" not in caught.value.message and "c2VjcmV0" not in caught.value.message


def test_refusals_never_repeat_a_sas_token() -> None:
    url = f"https://acct.blob.core.windows.net/Bad_Container/x.zip?{SAS}"
    with pytest.raises(InputError) as caught:
        TRAINING.resolve(url)
    assert "?<SAS>" in caught.value.message and "c2VjcmV0" not in caught.value.message
    assert shown(url).endswith("?<SAS>")
    assert without_sas(url) == "https://acct.blob.core.windows.net/Bad_Container/x.zip"
