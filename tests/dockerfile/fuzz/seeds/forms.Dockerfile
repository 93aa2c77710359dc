FROM busybox
LABEL a=b "c d"="e f" g=h\ i
LABEL legacy value with spaces
ENV A=1 B="two words" C=three\ words
ENV OLD value
ARG X Y=1 Z="q r"
EXPOSE 80/tcp 443 53/udp
VOLUME ["/data", "/logs"]
VOLUME /a /b
MAINTAINER someone <someone@example.com>
CMD [ "a", 'b' ]
CMD ["\u00e9", "\ud83d\ude00"]
RUN ["unterminated
run echo lower-case keyword
