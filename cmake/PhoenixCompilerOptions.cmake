# Warnings as errors everywhere; an optional ASan+UBSan build for the tests (PHOENIX_SANITIZE=ON).
add_compile_options(-Wall -Wextra -Werror -Wno-missing-field-initializers)
# g++ 12 reports -Wmaybe-uninitialized false positives inside std::expected<std::vector<...>> at -O2
# (GCC bug 105593 family); the sanitizer build (-O0/-O1 with ASan) would catch a real one.
add_compile_options(-Wno-maybe-uninitialized)
option(PHOENIX_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
if(PHOENIX_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
