/* RFC 3339 timestamps and durations, converted with proleptic Gregorian
 * calendar arithmetic: no timegm, no time zone database, no locale. */
#include "filters/timefmt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "filters/err.h"

#define SECS_PER_DAY 86400

/* "YYYY-MM-DDTHH:MM:SS" is 19 characters; fractions and the zone follow. */
#define STAMP_BASE_LEN 19

struct civil {
  int64_t year;
  unsigned month, day, hour, minute, second;
};

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Reads exactly N decimal digits at S into *OUT. */
static bool read_digits(const char *s, size_t n, unsigned *out) {
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i]))
      return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  *out = v;
  return true;
}

static bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil: eras of 400 years starting on 1 March). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

/* Inverse of days_from_civil. */
static void civil_from_days(int64_t z, struct civil *c) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  c->day = doy - (153 * mp + 2) / 5 + 1;
  c->month = mp < 10 ? mp + 3 : mp - 9;
  c->year = (int64_t)yoe + era * 400 + (c->month <= 2);
}

/* Parses the fixed "YYYY-MM-DDTHH:MM:SS" prefix and checks every range. A
 * leap second (:60) is accepted, as RFC 3339 allows, and counts as the
 * following second. */
static bool parse_base(const char *s, struct civil *c) {
  unsigned year;

  if (!read_digits(s, 4, &year) || s[4] != '-' || !read_digits(s + 5, 2, &c->month) ||
      s[7] != '-' || !read_digits(s + 8, 2, &c->day) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !read_digits(s + 11, 2, &c->hour) ||
      s[13] != ':' || !read_digits(s + 14, 2, &c->minute) || s[16] != ':' ||
      !read_digits(s + 17, 2, &c->second))
    return false;
  c->year = year;
  return c->month >= 1 && c->month <= 12 && c->day >= 1 &&
         c->day <= days_in_month(c->year, c->month) && c->hour <= 23 && c->minute <= 59 &&
         c->second <= 60;
}

/* Parses "Z" or "+HH:MM" / "-HH:MM" filling all of S; *OFFSET gets seconds
 * east of UTC. */
static bool parse_zone(const char *s, size_t len, int64_t *offset) {
  unsigned h, m;

  if (len == 1 && (s[0] == 'Z' || s[0] == 'z')) {
    *offset = 0;
    return true;
  }
  if (len != 6 || (s[0] != '+' && s[0] != '-') || !read_digits(s + 1, 2, &h) ||
      s[3] != ':' || !read_digits(s + 4, 2, &m) || h > 23 || m > 59)
    return false;
  *offset = (int64_t)(h * 3600 + m * 60) * (s[0] == '-' ? -1 : 1);
  return true;
}

int rfc3339_parse(const char *text, size_t len, int64_t *out) {
  struct civil c;
  int64_t offset;
  size_t i = STAMP_BASE_LEN;

  if (len <= STAMP_BASE_LEN || !parse_base(text, &c))
    return EMB_EBADTIME;
  if (text[i] == '.') {
    size_t start = ++i;
    while (i < len && is_digit(text[i]))
      i++;
    if (i == start)
      return EMB_EBADTIME;
  }
  if (!parse_zone(text + i, len - i, &offset))
    return EMB_EBADTIME;
  *out = days_from_civil(c.year, c.month, c.day) * SECS_PER_DAY +
         (int64_t)(c.hour * 3600 + c.minute * 60 + c.second) - offset;
  return 0;
}

int rfc3339_format(int64_t t, char *buf, size_t size) {
  struct civil c;
  int64_t days = t / SECS_PER_DAY, secs = t % SECS_PER_DAY;

  if (secs < 0) {
    secs += SECS_PER_DAY;
    days--;
  }
  civil_from_days(days, &c);
  return snprintf(buf, size, "%04lld-%02u-%02uT%02u:%02u:%02uZ", (long long)c.year, c.month,
                  c.day, (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60),
                  (unsigned)(secs % 60));
}

struct duration_unit {
  const char *name;
  uint64_t ms;
};

static const struct duration_unit duration_units[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000},
};

int duration_parse(const char *text, size_t len, uint64_t *out_ms) {
  uint64_t v = 0;
  size_t i = 0;

  for (; i < len && is_digit(text[i]); i++) {
    unsigned d = (unsigned)(text[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -EINVAL;
    v = v * 10 + d;
  }
  if (i == 0)
    return -EINVAL;
  for (size_t u = 0; u < sizeof(duration_units) / sizeof(duration_units[0]); u++) {
    const struct duration_unit *unit = &duration_units[u];
    if (strlen(unit->name) != len - i || memcmp(unit->name, text + i, len - i) != 0)
      continue;
    if (v > UINT64_MAX / unit->ms)
      return -EINVAL;
    *out_ms = v * unit->ms;
    return 0;
  }
  return -EINVAL;
}
