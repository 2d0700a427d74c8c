"""Which client configuration file a command uses: --config, $SPLITKEY_CLIENT_CONFIG, or the demo's."""

from __future__ import annotations

import os
from pathlib import Path

from splitkey.errors import ConfigError

CONFIG_ENV = "SPLITKEY_CLIENT_CONFIG"


def add_config_option(parser, role: str) -> None:
    parser.add_argument(
        "--config", "--client-config", dest="client_config", metavar="PATH",
        help=f"client TOML of the {role} role (default: ${CONFIG_ENV}, else .splitkey-dev/client-{role}.toml)",
    )


def client_config_path(args, role: str) -> Path:
    """Return the configuration file for `role`, or raise ConfigError naming the three ways to set it."""
    if getattr(args, "client_config", None):
        return Path(args.client_config)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    default = Path(".splitkey-dev") / f"client-{role}.toml"
    if default.exists():
        return default
    raise ConfigError(
        f"no client configuration for the {role} role: pass --config FILE, set {CONFIG_ENV}, or run this "
        f"command in the folder where 'splitkey up' created .splitkey-dev/"
    )
