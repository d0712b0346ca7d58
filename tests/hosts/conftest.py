def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "host: starts a real Krita / GIMP host provisioned by tools/hosts/provision.sh (fails, never skips, "
        "when one is missing)",
    )
