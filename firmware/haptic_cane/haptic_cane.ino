// haptic_cane.ino - reference device side of the edge_perception haptic line protocol
// (docs/haptic_protocol.md). Not built by the ROS package; a starting point for a cane handle.
//
// Reads "$HAP,<seq>,<pattern>,<intensity %>,<pulse deci-Hz>,<duration ms>,<mask hex>*CS" and
// "$PING,<seq>*CS" lines, answers "$ACK,<seq>" / "$PONG,<seq>" / "$ERR,<code>,<text>", drives
// vibration motors by PWM, and falls back to the SENSOR_LOST long-short rhythm on all motors
// when no valid command arrives for <duration> ms (also at power-up, until the first command).
//
// Wiring: each motor through a logic-level MOSFET (or a driver such as DRV2603) with a flyback
// diode on a PWM pin; never drive a motor straight from a pin.

#include <Arduino.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

const uint8_t MOTOR_PINS[] = {3, 5, 6};  // PWM pins; motor i answers to mask bit i
const uint8_t MOTOR_COUNT = sizeof(MOTOR_PINS) / sizeof(MOTOR_PINS[0]);
const unsigned long BAUD = 115200;
const uint8_t LINE_MAX = 120;
const uint8_t MAX_FIELDS = 8;

enum Pattern : uint8_t { OFF = 0, CAUTION = 1, WARNING = 2, CRITICAL = 3, SENSOR_LOST = 4 };

struct Command {
  uint8_t pattern;
  uint8_t intensity_pct;    // 0..100
  uint16_t pulse_deci_hz;   // 0 = continuous
  uint32_t duration_ms;     // watchdog: keep this long without a newer command
  uint8_t mask;             // bit i = motor i
};

// "I cannot see": what the device shows when the host goes quiet.
const Command FALLBACK = {SENSOR_LOST, 50, 5, 0, 0xFF};

Command current = FALLBACK;
bool in_fallback = true;
unsigned long command_ms = 0;        // millis() when `current` arrived
unsigned long rhythm_start_ms = 0;   // phase origin of the pulse rhythm

char line[LINE_MAX + 1];
uint8_t line_len = 0;
bool line_overflow = false;

uint8_t xorChecksum(const char *text, size_t length) {
  uint8_t value = 0;
  for (size_t i = 0; i < length; ++i) value ^= (uint8_t)text[i];
  return value;
}

void sendLine(const char *payload) {
  char tail[6];
  snprintf(tail, sizeof(tail), "*%02X\n", xorChecksum(payload, strlen(payload)));
  Serial.write('$');
  Serial.print(payload);
  Serial.print(tail);
}

void sendReply(const char *kind, uint32_t seq) {
  char payload[24];
  snprintf(payload, sizeof(payload), "%s,%lu", kind, (unsigned long)seq);
  sendLine(payload);
}

void sendError(uint8_t code, const char *text) {
  char payload[64];
  snprintf(payload, sizeof(payload), "ERR,%u,%s", code, text);
  sendLine(payload);
}

// Plain digits only (no sign, no spaces), value <= max_value.
bool parseField(const char *text, uint8_t base, uint32_t max_value, uint32_t *out) {
  if (*text == '\0') return false;
  for (const char *c = text; *c; ++c) {
    if (base == 16 ? !isxdigit(*c) : !isdigit(*c)) return false;
  }
  if (strlen(text) > 6) return false;  // longer than any valid field: avoid overflow
  unsigned long value = strtoul(text, NULL, base);
  if (value > max_value) return false;
  *out = value;
  return true;
}

void applyCommand(const Command &command, unsigned long now) {
  // A refresh of the same rhythm keeps its phase: refreshes every 0.3 s must not restart a
  // 1 Hz pulse each time.
  if (in_fallback || command.pattern != current.pattern ||
      command.pulse_deci_hz != current.pulse_deci_hz) {
    rhythm_start_ms = now;
  }
  current = command;
  in_fallback = false;
  command_ms = now;
}

void handleLine(char *text, unsigned long now) {
  if (text[0] != '$') { sendError(2, "no $"); return; }
  char *star = strrchr(text, '*');
  if (star == NULL || strlen(star) != 3) { sendError(2, "no checksum"); return; }
  *star = '\0';
  uint32_t checksum;
  if (!parseField(star + 1, 16, 255, &checksum)) { sendError(2, "bad checksum field"); return; }
  char *payload = text + 1;
  if (xorChecksum(payload, strlen(payload)) != checksum) { sendError(1, "bad checksum"); return; }

  char *fields[MAX_FIELDS];
  uint8_t count = 0;
  for (char *token = payload;;) {
    if (count == MAX_FIELDS) { sendError(2, "too many fields"); return; }
    fields[count++] = token;
    char *comma = strchr(token, ',');
    if (comma == NULL) break;
    *comma = '\0';
    token = comma + 1;
  }

  uint32_t seq;
  if (count < 2 || !parseField(fields[1], 10, 65535, &seq)) { sendError(2, "bad seq"); return; }
  if (strcmp(fields[0], "PING") == 0 && count == 2) {
    sendReply("PONG", seq);  // a ping proves the link, it does not feed the watchdog
    return;
  }
  if (strcmp(fields[0], "HAP") == 0 && count == 7) {
    uint32_t pattern, intensity, pulse, duration, mask;
    if (!parseField(fields[2], 10, 4, &pattern) || !parseField(fields[3], 10, 100, &intensity) ||
        !parseField(fields[4], 10, 999, &pulse) ||
        !parseField(fields[5], 10, 600000UL, &duration) || duration == 0 ||
        strlen(fields[6]) != 2 || !parseField(fields[6], 16, 255, &mask)) {
      sendError(2, "bad HAP field");
      return;
    }
    Command command = {(uint8_t)pattern, (uint8_t)intensity, (uint16_t)pulse, duration,
                       (uint8_t)mask};
    applyCommand(command, now);
    sendReply("ACK", seq);
    return;
  }
  sendError(2, "unknown message");
}

// Is the rhythm "on" at `elapsed` ms after its phase origin?
bool rhythmOn(const Command &command, unsigned long elapsed) {
  if (command.pattern == OFF || command.intensity_pct == 0) return false;
  if (command.pattern == SENSOR_LOST) {
    // Long-short: on 0-40 % of the period, off, on 50-65 %, off. 2 s period if pulse is 0.
    unsigned long period = command.pulse_deci_hz ? 10000UL / command.pulse_deci_hz : 2000UL;
    unsigned long phase = (elapsed % period) * 100UL / period;
    return phase < 40 || (phase >= 50 && phase < 65);
  }
  if (command.pulse_deci_hz == 0) return true;  // continuous (CRITICAL by default)
  unsigned long period = 10000UL / command.pulse_deci_hz;
  return (elapsed % period) < period / 2;
}

void driveMotors(unsigned long now) {
  uint8_t duty = rhythmOn(current, now - rhythm_start_ms)
                     ? (uint8_t)((uint16_t)current.intensity_pct * 255U / 100U) : 0;
  for (uint8_t i = 0; i < MOTOR_COUNT; ++i) {
    analogWrite(MOTOR_PINS[i], (current.mask >> i) & 1 ? duty : 0);
  }
}

void readSerial(unsigned long now) {
  while (Serial.available() > 0) {
    char c = (char)Serial.read();
    if (c == '\n') {
      if (line_len > 0 && line[line_len - 1] == '\r') --line_len;
      line[line_len] = '\0';
      if (line_overflow) {
        sendError(2, "line too long");
      } else if (line_len > 0) {
        handleLine(line, now);
      }
      line_len = 0;
      line_overflow = false;
    } else if (line_len < LINE_MAX) {
      line[line_len++] = c;
    } else {
      line_overflow = true;
    }
  }
}

void setup() {
  for (uint8_t i = 0; i < MOTOR_COUNT; ++i) {
    pinMode(MOTOR_PINS[i], OUTPUT);
    analogWrite(MOTOR_PINS[i], 0);
  }
  Serial.begin(BAUD);
  rhythm_start_ms = millis();
}

void loop() {
  unsigned long now = millis();
  readSerial(now);
  // Unsigned subtraction stays right across the millis() wrap (49.7 days).
  if (!in_fallback && now - command_ms >= current.duration_ms) {
    current = FALLBACK;
    in_fallback = true;
    rhythm_start_ms = now;
    sendError(3, "watchdog");
  }
  driveMotors(now);
}
