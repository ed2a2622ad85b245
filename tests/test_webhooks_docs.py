"""The worked example of docs/customer-api.md's Webhooks section holds: its signature is the portal's for its
secret and body, and its Python and shell recipes verify it."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from webhooks.delivery import signature

# The document's Webhooks section, where the worked example is.
DOC = (Path(__file__).resolve().parent.parent / "docs" / "customer-api.md").read_text().split("\n## Webhooks\n")[1]


def _blocks(language=""):
    """The contents of the document's fenced blocks opened with ```language."""
    fenced = re.findall(r"^```(\w*)\n(.*?)\n```$", DOC, flags=re.DOTALL | re.MULTILINE)
    return [text for opener, text in fenced if opener == language]


SECRET = next(block for block in _blocks() if block.startswith("whsec_"))
BODY = _blocks("json")[0].encode()
HEADER = next(block for block in _blocks() if block.startswith("X-Portal-Signature: ")).split(": ", 1)[1]


def test_the_examples_signature_is_the_one_the_portal_sends():
    assert signature(BODY, SECRET) == HEADER


def test_the_python_recipe_accepts_the_example_and_refuses_a_changed_body():
    namespace = {}
    exec(_blocks("python")[0], namespace)  # noqa: S102 - the documentation's own code
    assert namespace["verify"](SECRET, BODY, HEADER)
    assert not namespace["verify"](SECRET, BODY.replace(b"Lobby", b"Lobby!"), HEADER)
    assert not namespace["verify"](SECRET + "x", BODY, HEADER)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_shell_recipe_prints_the_examples_signature(tmp_path):
    (tmp_path / "body.json").write_bytes(BODY)
    command = _blocks("sh")[0]
    result = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True)  # noqa: S603
    assert result.stdout.strip() == HEADER


def test_the_example_secret_follows_the_rule_the_page_enforces():
    from webhooks.secrets import checked_secret

    assert checked_secret(SECRET) == SECRET
