FROM a
RUN b \
  c
﻿CMD d
