FROM debian
RUN <<EOF
set -e
apt-get update
EOF
RUN <<-'SCRIPT' bash
	echo "$HOME"
	SCRIPT
COPY <<A <<"B" /etc/
a=1
A
b=2
B
RUN 3<<X cat /dev/fd/3
data
X
ONBUILD ADD <<E /e
e
E
RUN <<eo'f' <<  Z > out
x
eof
Z
