# Port I/O guest (64-bit, loaded at 0x10000): reads the test device, echoes +1, reads an unclaimed
# port (all-ones expected), a 32-bit OUT, and reports EFER (LME|LMA) to prove long mode.
.code64
.globl _start
_start:
  mov $0x500, %dx
  in (%dx), %al
  inc %al
  out %al, (%dx)
  mov $0x600, %dx
  in (%dx), %al
  mov $0x501, %dx
  out %al, (%dx)
  mov $0x504, %dx
  mov $0x12345678, %eax
  out %eax, (%dx)
  mov $0xc0000080, %ecx
  rdmsr
  shr $8, %eax
  mov $0x502, %dx
  out %al, (%dx)
  mov $0x507, %dx
  out %al, (%dx)
1:
  hlt
  jmp 1b
