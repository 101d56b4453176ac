from fleet_dagster.cli.main import cli

cli()
