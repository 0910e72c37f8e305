//! V2Ray `kcpSettings` JSON import (spec §4) and Xray finalmask import (spec §8.3).
