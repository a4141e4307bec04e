from .campaign import main

main()
