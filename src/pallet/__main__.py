from pallet.cli.main import main

main()
