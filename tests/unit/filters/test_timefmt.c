/* Unit tests for filters/timefmt.c: RFC 3339 timestamps and durations. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "filters/err.h"
#include "filters/timefmt.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct stamp_case {
  const char *in;
  int64_t want;
};

Test(timefmt, parses_utc_and_offset_timestamps) {
  static const struct stamp_case cases[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01t00:00:01z", 1},
      {"1970-01-01 00:00:00Z", 0},
      {"1969-12-31T23:59:59Z", -1},
      {"2024-07-20T00:00:00Z", 1721433600},
      {"2024-09-29T00:00:00Z", 1727568000},
      {"2024-09-29T04:00:00Z", 1727582400},
      {"2024-09-29T00:00:00-04:00", 1727582400},
      {"2024-09-29T09:30:00+05:30", 1727582400},
      {"2024-09-29T04:00:00+00:00", 1727582400},
      {"2024-09-29T04:00:00-00:00", 1727582400},
      {"2024-09-29T04:00:00.999999Z", 1727582400},
      {"2024-09-29T04:00:00.5+00:00", 1727582400},
      {"2038-01-19T03:14:08Z", 2147483648},
      {"0000-01-01T00:00:00Z", -62167219200},
      {"9999-12-31T23:59:59Z", 253402300799},
      {"2000-01-01T00:00:00+23:59", 946598460},
      {"2016-12-31T23:59:60Z", 1483228800},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    int64_t got = 42;
    int err = rfc3339_parse(cases[i].in, strlen(cases[i].in), &got);
    cr_expect_eq(err, 0, "rfc3339_parse(\"%s\") = %s", cases[i].in, err_name(err));
    cr_expect_eq(got, cases[i].want, "\"%s\": %lld, want %lld", cases[i].in, (long long)got,
                 (long long)cases[i].want);
  }
}

Test(timefmt, knows_leap_years_and_days_per_month) {
  static const struct stamp_case cases[] = {
      {"2024-02-29T00:00:00Z", 1709164800},
      {"2000-02-29T00:00:00Z", 951782400},
      {"2023-03-01T00:00:00Z", 1677628800},
      {"2024-03-01T00:00:00Z", 1709251200},
      {"2024-12-31T00:00:00Z", 1735603200},
      {"2024-04-30T00:00:00Z", 1714435200},
  };
  static const char *const bad[] = {
      "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z",
      "2024-02-30T00:00:00Z", "2024-04-31T00:00:00Z", "2024-06-31T00:00:00Z",
      "2024-09-31T00:00:00Z", "2024-11-31T00:00:00Z", "2024-01-32T00:00:00Z",
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    int64_t got = 0;
    cr_expect_eq(rfc3339_parse(cases[i].in, strlen(cases[i].in), &got), 0, "%s", cases[i].in);
    cr_expect_eq(got, cases[i].want, "\"%s\": %lld", cases[i].in, (long long)got);
  }
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    int64_t got;
    cr_expect_eq(rfc3339_parse(bad[i], strlen(bad[i]), &got), EMB_EBADTIME, "\"%s\"", bad[i]);
  }
}

Test(timefmt, rejects_missing_zone_and_malformed_timestamps) {
  static const char *const bad[] = {
      "",
      "2024-09-29",
      "2024-09-29T04:00:00",
      "2024-09-29T04:00:00.5",
      "2024-09-29T04:00Z",
      "2024-09-29T04:00:00 Z",
      "2024-09-29T04:00:00ZZ",
      "2024-09-29T04:00:00UTC",
      "2024-09-29T04:00:00GMT",
      "2024-09-29T04:00:00+0400",
      "2024-09-29T04:00:00+04",
      "2024-09-29T04:00:00+4:00",
      "2024-09-29T04:00:00+24:00",
      "2024-09-29T04:00:00+04:60",
      "2024-09-29T04:00:00.Z",
      "2024-09-29T04:00:00,5Z",
      "2024-9-29T04:00:00Z",
      "24-09-29T04:00:00Z",
      "+2024-09-29T04:00:00Z",
      "2024/09/29T04:00:00Z",
      "2024-09-29_04:00:00Z",
      "2024-09-29T4:00:00Z",
      "2024-00-10T00:00:00Z",
      "2024-13-10T00:00:00Z",
      "2024-09-00T00:00:00Z",
      "2024-09-29T24:00:00Z",
      "2024-09-29T23:60:00Z",
      "2024-09-29T23:59:61Z",
      "2024-09-29T04:00:00Z ",
      " 2024-09-29T04:00:00Z",
      "2024-09-29T04:0a:00Z",
  };
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    int64_t got = 7;
    cr_expect_eq(rfc3339_parse(bad[i], strlen(bad[i]), &got), EMB_EBADTIME, "\"%s\"", bad[i]);
    cr_expect_eq(got, 7, "\"%s\": out must be untouched", bad[i]);
  }
}

Test(timefmt, rejects_timestamp_with_embedded_nul) {
  int64_t got;
  cr_expect_eq(rfc3339_parse("2024-09-29T04:00:00Z\0", 21, &got), EMB_EBADTIME);
}

struct format_case {
  int64_t t;
  const char *want;
};

Test(timefmt, formats_utc_with_z) {
  static const struct format_case cases[] = {
      {0, "1970-01-01T00:00:00Z"},
      {1727582400, "2024-09-29T04:00:00Z"},
      {-1, "1969-12-31T23:59:59Z"},
      {951782400, "2000-02-29T00:00:00Z"},
      {253402300799, "9999-12-31T23:59:59Z"},
      {-62167219200, "0000-01-01T00:00:00Z"},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    char buf[32];
    cr_expect_eq(rfc3339_format(cases[i].t, buf, sizeof(buf)), 20);
    cr_expect_str_eq(buf, cases[i].want);
  }
}

Test(timefmt, formats_the_far_future_without_overflow) {
  char buf[64];
  cr_expect_gt(rfc3339_format(INT64_MAX, buf, sizeof(buf)), 20);
  cr_expect_gt(rfc3339_format(INT64_MIN, buf, sizeof(buf)), 20);
}

Test(timefmt, format_and_parse_round_trip_every_day_of_four_centuries) {
  char buf[32];
  int64_t got;

  /* 1900..2300 covers every leap-year rule; stepping by a day plus 7 s
   * also exercises the time of day. */
  for (int64_t t = -2208988800; t < 10413792000; t += 86407) {
    int len = rfc3339_format(t, buf, sizeof(buf));
    cr_assert_eq(rfc3339_parse(buf, (size_t)len, &got), 0, "%s", buf);
    cr_assert_eq(got, t, "%s", buf);
  }
}

Test(timefmt, format_truncates_like_snprintf) {
  char buf[8];
  cr_expect_eq(rfc3339_format(0, buf, sizeof(buf)), 20);
  cr_expect_str_eq(buf, "1970-01");
}

struct duration_case {
  const char *in;
  uint64_t want;
};

Test(timefmt, parses_durations_in_every_unit) {
  static const struct duration_case cases[] = {
      {"250ms", 250},   {"10s", 10000},     {"5m", 300000},   {"2h", 7200000},
      {"30", 30000},    {"0", 0},           {"0ms", 0},       {"007s", 7000},
      {"18446744073709551615ms", UINT64_MAX},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    uint64_t got = 1;
    int err = duration_parse(cases[i].in, strlen(cases[i].in), &got);
    cr_expect_eq(err, 0, "duration_parse(\"%s\") = %d", cases[i].in, err);
    cr_expect_eq(got, cases[i].want, "\"%s\": %llu", cases[i].in, (unsigned long long)got);
  }
}

Test(timefmt, rejects_malformed_and_overflowing_durations) {
  static const char *const bad[] = {
      "",    "ms",   "-5s",  "+5s",  "5 s", " 5s", "5s ",  "5S",  "5sec", "1.5s",
      "5d",  "5ms5", "5hs",  "0x10", "s5",  "1e3", "18446744073709551616ms",
      "18446744073709551615s", "9999999999999999h",
  };
  for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
    uint64_t got = 3;
    cr_expect_eq(duration_parse(bad[i], strlen(bad[i]), &got), -EINVAL, "\"%s\"", bad[i]);
    cr_expect_eq(got, 3, "\"%s\": out must be untouched", bad[i]);
  }
}
