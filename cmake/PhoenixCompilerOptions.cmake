# Warnings as errors everywhere; an optional ASan+UBSan build for the tests (PHOENIX_SANITIZE=ON).
add_compile_options(-Wall -Wextra -Werror -Wno-missing-field-initializers)
option(PHOENIX_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
if(PHOENIX_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
