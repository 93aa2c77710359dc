FROM a

RUN one \

    two \
# comment
    three \
	
    four

RUN trailing \   
    spaces
RUN ends-at-eof \
