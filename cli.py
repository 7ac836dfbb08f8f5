"""Run the CLI from a checkout without installing it: python cli.py ..."""

from tenantdb.cli import main

if __name__ == "__main__":
    main()
