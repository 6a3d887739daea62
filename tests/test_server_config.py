"""The server config file as an operator first writes it."""

from __future__ import annotations

import pytest

from gslb.config.server import ServerConfig, load_server_config


@pytest.mark.parametrize("text", ["", "# nothing set yet\n", "---\n"])
def test_an_empty_or_comment_only_config_means_the_defaults(tmp_path, text):
    """It used to stop `gslb serve` with an AttributeError (an empty mapping without its line table)."""
    path = tmp_path / "server.yaml"
    path.write_text(text)
    config = load_server_config(str(path))
    assert config.listen == ServerConfig().listen and config.rrl == ServerConfig().rrl
    assert config.file == str(path)
