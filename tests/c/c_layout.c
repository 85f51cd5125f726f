/* c_layout.c - the public structs' layout as the C compiler gives it, for cxx_header.cpp. */
#include "layout_fields.h"

const layout_item_t c_layout[] = LAYOUT_TABLE;
const size_t c_layout_count = sizeof(c_layout) / sizeof(c_layout[0]);
