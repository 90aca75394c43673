from kubeserve.cli.main import cli

cli()
