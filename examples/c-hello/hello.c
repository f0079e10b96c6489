#include <stdio.h>

int main(void) {
    puts("hello from strata");
    return 0;
}
