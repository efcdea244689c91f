from modelyard.runners.serve import main

main()
