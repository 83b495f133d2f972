from irflow.cli.main import main

main()
