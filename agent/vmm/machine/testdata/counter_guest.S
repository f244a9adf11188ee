# Counts forever in the qword at guest physical 0x9000.
.code64
.globl _start
_start:
  mov $0x9000, %rbx
1:
  incq (%rbx)
  jmp 1b
