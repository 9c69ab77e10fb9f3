/* placeholder: replaced by the emulator */
int main(void) { return 1; }
