from trackrecord.cli import main

main()
