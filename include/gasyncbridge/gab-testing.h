/* gab-testing.h: the test harness for `meson test`. */
#pragma once
